/* shapecheck's shape-flow picture. The renderer inlines this file in a script element and
 * calls it on the report's div, so it must stay one function expression: no globals, several
 * reports per page (notebooks), and no closing script tag anywhere in it, comments included.
 * It reads the JSON the renderer embedded (shapecheck/render/html.py), lays the blocks out in
 * execution order and draws them as SVG: a volume per C x H x W map, sized on a log scale so
 * that 3x224x224 and 2048x7x7 both read. Nothing is fetched. */
(function (root) {
  "use strict";
  if (!root || root.getAttribute("data-ready")) { return; }
  root.setAttribute("data-ready", "1");

  var data = JSON.parse(root.querySelector("script.sc-data").textContent);
  var rows = data.rows, nodes = data.nodes, findings = data.findings;
  var NS = "http://www.w3.org/2000/svg";
  var INPUT = -1;
  var CALLOUT = {w: 360, h: 100, lane: 108};  // a failing block's finding box, in SVG pixels
  var canvas = root.querySelector(".sc-canvas");
  var tip = root.querySelector(".sc-tip");
  var box = root.querySelector(".sc-flow");
  var initial = nodes.map(function (n) { return !!n.o; });
  var open = initial.slice();
  var pinned = null;
  var rowNode = {};
  nodes.forEach(function (n, id) { if (n.r !== null) { rowNode[n.r] = id; } });

  // -- numbers and names ------------------------------------------------------------------
  function count(n) {  // as shapecheck.render.numbers.count: 12,498,500 -> 12.50M
    var units = [["T", 1e12], ["G", 1e9], ["M", 1e6], ["K", 1e3]];
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(n) >= units[i][1]) { return (n / units[i][1]).toFixed(2) + units[i][0]; }
    }
    return String(n);
  }
  function commas(n) { return n.toLocaleString("en-US"); }
  function dims(shape) { return shape ? (shape.slice(1).join("x") || "scalar") : "?"; }
  function bracketed(shapes) { return shapes.map(function (s) { return "[" + s.join(", ") + "]"; }).join(", ") || "--"; }
  function esc(text) {
    return String(text).replace(/[&<>"]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;"}[c]; });
  }
  function cut(text, most) { return text.length > most ? text.slice(0, most - 1) + "…" : text; }

  // -- the tree ---------------------------------------------------------------------------
  function expandable(id) { return nodes[id].c.length > 0 && !open[id]; }
  function shown() {
    var out = [];
    (function walk(id) {
      if (nodes[id].c.length && open[id]) { nodes[id].c.forEach(walk); } else { out.push(id); }
    })(0);
    return out;
  }
  function firstRow(id) { var n = nodes[id]; return n.r !== null ? n.r : firstRow(n.c[0]); }
  function lastRowNode(id) { var n = nodes[id]; return n.r !== null ? id : lastRowNode(n.c[n.c.length - 1]); }
  function output(id) { var r = rows[nodes[lastRowNode(id)].r]; return r.o.length ? r.o[0] : null; }
  function input(id) { var r = rows[firstRow(id)]; return r.i.length ? r.i[0] : null; }
  function total(id, key) {
    var n = nodes[id];
    if (n.r !== null) { return rows[n.r][key]; }
    return n.c.reduce(function (sum, c) { return sum + total(c, key); }, 0);
  }
  function fieldOf(id) {  // a block's receptive field: that of the row that produced its output
    var n = nodes[id];
    for (var r = n.hi - 1; r >= n.lo; r--) { if (rows[r].rf) { return rows[r].rf; } }
    return null;
  }
  function name(id, prefix) {  // a row's name without its enclosing module's: conv1 under layer1.0
    var n = nodes[id];
    if (n.r === null) { return name(n.c[0], prefix) + " … " + name(n.c[n.c.length - 1], prefix); }
    var full = rows[n.r].n;
    return prefix && full.indexOf(prefix) === 0 && full.length > prefix.length ? full.slice(prefix.length) : full;
  }
  function wrapsRun(id) { var c = nodes[id].c; return c.length === 1 && nodes[c[0]].r === null; }
  function type(id) {  // layer3 holding only Bottleneck x36 reads as that
    var n = nodes[id];
    if (n.r !== null) { return wrapsRun(id) && !open[id] ? type(n.c[0]) : rows[n.r].t; }
    return n.p === 1 ? rows[firstRow(id)].t + " ×" + n.n : "loop ×" + n.n + " (" + n.p + " blocks each)";
  }
  function rowsWith(id, test) {  // rows under a node that pass test
    var n = nodes[id], found = [];
    for (var r = n.lo; r < n.hi; r++) { if (test(rows[r])) { found.push(r); } }
    return found;
  }

  // -- geometry: the course's volumes on a log scale ----------------------------------------
  function side(n) { return Math.min(150, 10 + 13 * Math.log2(Math.max(1, n))); }      // H, W
  function thick(n) { return Math.min(64, 4 + 5 * Math.log2(Math.max(1, n))); }         // channels
  function geometry(shape) {
    var d = shape ? shape.slice(1) : null;
    if (!d) { return {w: 22, h: 22, z: 0}; }
    if (d.length >= 3) { return {w: thick(d[0]), h: side(d[d.length - 2]), z: side(d[d.length - 1]) * 0.42}; }
    if (d.length === 2) { return {w: thick(d[0]), h: side(d[1]), z: 3}; }
    if (d.length === 1) { return {w: 9, h: side(d[0]), z: 3}; }
    return {w: 8, h: 8, z: 0};
  }
  var COLOURS = [
    [/ConvTranspose|Conv|conv/, "#4e79a7"], [/Pool|pool/, "#f28e2b"], [/Attention|attention/, "#ff9da7"],
    [/Norm|norm/, "#a0cbe8"], [/Embedding/, "#9c755f"], [/Dropout|dropout/, "#d7d7d7"],
    [/Upsample|interpolate|grid_sample/, "#ffbe7d"],
    [/ReLU|GELU|SiLU|Sigmoid|Tanh|Softmax|ELU|Hardswish|Mish|relu|gelu|silu|sigmoid|tanh|softmax/, "#59a14f"],
    [/Linear|linear|matmul|bmm|einsum/, "#b07aa1"],
    [/view|reshape|flatten|Flatten|permute|transpose|squeeze|expand|contiguous|chunk|split|\[\]|getitem|repeat/, "#edc948"],
    [/add|cat|stack|mul|sub|div|sum|\+/, "#76b7b2"]
  ];
  function colour(id) {  // a folded block takes the colour of its heaviest row: a double conv is a conv
    var n = nodes[id], r = n.r, best = -1;
    if (n.c.length) {
      for (var i = n.lo; i < n.hi; i++) {
        var leaf = i + 1 >= rows.length || rows[i + 1].d <= rows[i].d, weight = rows[i].m * 2 + rows[i].p;
        if (leaf && weight > best) { best = weight; r = i; }
      }
    }
    var t = rows[r].t;
    for (var k = 0; k < COLOURS.length; k++) { if (COLOURS[k][0].test(t)) { return COLOURS[k][1]; } }
    return "#bab0ac";
  }
  function shade(hex, by) {
    var n = parseInt(hex.slice(1), 16), out = [16, 8, 0].map(function (s) {
      var c = (n >> s) & 255;
      return Math.max(0, Math.min(255, Math.round(by > 0 ? c + (255 - c) * by : c * (1 + by))));
    });
    return "rgb(" + out.join(",") + ")";
  }

  // -- drawing ------------------------------------------------------------------------------
  function el(tag, attrs, parent, text) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) { if (Object.prototype.hasOwnProperty.call(attrs, k)) { e.setAttribute(k, attrs[k]); } }
    if (text !== undefined) { e.textContent = text; }
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function volume(g, x, mid, geo, fill) {
    var w = geo.w, h = geo.h, z = geo.z, top = mid - h / 2, lift = z * 0.8;
    if (z > 0) {
      el("polygon", {"class": "sc-top", fill: shade(fill, 0.35),
        points: [x, top, x + z, top - lift, x + w + z, top - lift, x + w, top].join(" ")}, g);
      el("polygon", {"class": "sc-side", fill: shade(fill, -0.25),
        points: [x + w, top, x + w + z, top - lift, x + w + z, top + h - lift, x + w, top + h].join(" ")}, g);
    }
    el("rect", {"class": "sc-face", x: x, y: top, width: w, height: h, fill: fill}, g);
  }

  function draw() {
    if (!nodes.length) { canvas.textContent = "No layer was traced."; return; }
    var order = shown(), prefixOf = {}, depthOf = {};
    (function walk(id, prefix, depth) {
      prefixOf[id] = prefix; depthOf[id] = depth;
      var inner = nodes[id].r !== null && id !== 0 ? rows[nodes[id].r].n + "." : prefix;
      if (nodes[id].c.length && open[id]) {
        nodes[id].c.forEach(function (c) { walk(c, inner, id === 0 ? 0 : depth + 1); });
      }
    })(0, "", -1);
    var owner = new Array(rows.length), position = {};
    order.forEach(function (id, i) {
      position[id] = i;
      for (var r = nodes[id].lo; r < nodes[id].hi; r++) { owner[r] = id; }
    });

    // Edges between blocks, from each row's producing rows: consecutive ones are arrows
    // with the shape on them, the rest (residual adds, skip concatenations) arcs above.
    var edges = [], seen = {};
    order.forEach(function (b) {
      for (var r = nodes[b].lo; r < nodes[b].hi; r++) {
        rows[r].s.forEach(function (s) {
          var a = s === INPUT ? "in" : (s === null ? undefined : owner[s]);
          if (a === undefined || a === b || seen[a + ">" + b]) { return; }
          seen[a + ">" + b] = true;
          var shape = s === INPUT ? data.inputs[0] : (rows[s].o[0] || null);
          edges.push({a: a, b: b, label: dims(shape)});
        });
      }
    });
    var straight = {};
    edges.forEach(function (e) {
      var before = e.a === "in" ? -1 : position[e.a];
      if (before === position[e.b] - 1 && !straight[e.b]) { straight[e.b] = e; e.straight = true; }
    });

    // Horizontal layout: the input block, then every block, then the output arrow.
    var blocks = [{id: "in", geo: geometry(data.inputs[0] || null), label: data.inputs.length > 1 ? "input ×" +
      data.inputs.length : "input", type: data.inputs.length ? dims(data.inputs[0]) : ""}];
    order.forEach(function (id) {
      blocks.push({id: id, geo: geometry(output(id)), label: name(id, prefixOf[id]), type: type(id)});
    });
    var x = 12, up = 0, down = 0;
    blocks.forEach(function (blk, i) {
      var into = i === 0 ? null : straight[blk.id];
      x += i === 0 ? 0 : (into ? Math.max(34, into.label.length * 6.3 + 14) : 34);
      var text = Math.min(112, Math.max(cut(blk.label, 18).length, cut(blk.type, 20).length) * 6.2);
      blk.slot = Math.max(blk.geo.w + blk.geo.z, text);
      blk.x = x; blk.left = x + (blk.slot - blk.geo.w - blk.geo.z) / 2;
      x += blk.slot;
      up = Math.max(up, blk.geo.h / 2 + blk.geo.z * 0.8); down = Math.max(down, blk.geo.h / 2);
    });
    var byId = {};
    blocks.forEach(function (blk) { byId[blk.id] = blk; });

    // Arcs: shorter ones nearer the blocks, each above every arc it spans.
    var arcs = edges.filter(function (e) { return !e.straight; }).map(function (e) {
      var a = byId[e.a], b = byId[e.b];
      return {e: e, x1: a.left + (a.geo.w + a.geo.z) / 2, x2: b.left + (b.geo.w + b.geo.z) / 2, level: 0};
    }).sort(function (p, q) { return (p.x2 - p.x1) - (q.x2 - q.x1); });
    arcs.forEach(function (arc, i) {
      for (var j = 0; j < i; j++) {
        var o = arcs[j];
        if (o.x1 < arc.x2 && arc.x1 < o.x2) { arc.level = Math.max(arc.level, o.level + 1); }
      }
      arc.level = Math.min(arc.level, 12);
    });
    var levels = arcs.reduce(function (m, a) { return Math.max(m, a.level + 1); }, 0);
    var mid = 14 + levels * 15 + up + (levels ? 14 : 0);
    var labels = mid + down + 22;  // below the folded blocks' + badges

    // Brackets of the open groups, below the labels; then the failing blocks' findings.
    var groups = [];
    Object.keys(prefixOf).forEach(function (key) {
      var id = Number(key);
      if (id === 0 || !nodes[id].c.length || !open[id]) { return; }
      var inside = order.filter(function (b) { return nodes[b].lo >= nodes[id].lo && nodes[b].hi <= nodes[id].hi; });
      if (!inside.length) { return; }
      groups.push({id: id, x1: byId[inside[0]].x, x2: byId[inside[inside.length - 1]].x +
        byId[inside[inside.length - 1]].slot, depth: depthOf[id]});
    });
    var groupDepth = groups.reduce(function (m, g) { return Math.max(m, g.depth + 1); }, 0);
    var groupsTop = labels + 20;
    var calloutsTop = groupsTop + groupDepth * 16 + 10;

    var failing = {};
    rows.forEach(function (row, r) {  // rows that failed, and rows with an error that ran (a folded batch)
      if (!row.x && !(row.f || []).some(function (f) { return findings[f].sev === "error"; })) { return; }
      var own = rowNode[r] !== undefined ? nodes[rowNode[r]] : null;
      var at = owner[r] !== undefined ? owner[r] : (own ? owner[Math.max(own.lo, own.hi - 1)] : undefined);
      if (at !== undefined) { (failing[at] = failing[at] || []).push(r); }
    });
    var callouts = [], lanes = [];
    order.forEach(function (id) {
      if (!failing[id]) { return; }
      var blk = byId[id], cx = blk.x, lane = 0;
      while (lanes[lane] !== undefined && lanes[lane] > cx) { lane++; }
      lanes[lane] = cx + CALLOUT.w + 8;
      callouts.push({id: id, x: cx, lane: lane});
    });
    var height = calloutsTop + lanes.length * CALLOUT.lane + 8;
    var width = callouts.reduce(function (w, c) { return Math.max(w, c.x + CALLOUT.w + 8); }, x + 150);

    var svg = el("svg", {width: width, height: height, viewBox: "0 0 " + width + " " + height,
      role: "img", "aria-label": "shape flow of " + order.length + " blocks"});
    var defs = el("defs", {}, svg);
    var marker = el("marker", {id: root.id + "-arrow", viewBox: "0 0 8 8", refX: 7, refY: 4, markerWidth: 7,
      markerHeight: 7, orient: "auto-start-reverse"}, defs);
    el("path", {d: "M0,0 L8,4 L0,8 z", fill: "#6e7781"}, marker);
    var arrow = "url(#" + root.id + "-arrow)";

    arcs.forEach(function (arc) {
      var a = byId[arc.e.a], b = byId[arc.e.b];
      var y1 = mid - a.geo.h / 2 - a.geo.z * 0.8 - 2, y2 = mid - b.geo.h / 2 - b.geo.z * 0.8 - 2;
      var peak = mid - up - 16 - arc.level * 15;
      el("path", {"class": "sc-skip", d: "M" + arc.x1 + "," + y1 + " C" + arc.x1 + "," + peak + " " + arc.x2 + "," +
        peak + " " + arc.x2 + "," + y2, "marker-end": arrow}, svg);
      el("text", {"class": "sc-edge-label", x: (arc.x1 + arc.x2) / 2, y: 0.75 * peak + 0.25 * (y1 + y2) / 2 - 3,
        "text-anchor": "middle"}, svg, arc.e.label);
    });
    blocks.forEach(function (blk, i) {
      var into = straight[blk.id];
      if (i === 0 || !into) { return; }
      var a = byId[into.a], x1 = a.left + a.geo.w + a.geo.z + 2, x2 = blk.left - 2;
      el("line", {"class": "sc-edge", x1: x1, y1: mid, x2: x2, y2: mid, "marker-end": arrow}, svg);
      el("text", {"class": "sc-edge-label", x: (x1 + x2) / 2, y: mid - 5, "text-anchor": "middle"}, svg, into.label);
    });
    var last = blocks[blocks.length - 1];
    if (data.outputs.length && last.id !== "in") {
      var ox = last.left + last.geo.w + last.geo.z + 2, label = dims(data.outputs[0]);
      el("line", {"class": "sc-edge", x1: ox, y1: mid, x2: ox + Math.max(34, label.length * 6.3 + 14), y2: mid,
        "marker-end": arrow}, svg);
      el("text", {"class": "sc-edge-label", x: ox + Math.max(34, label.length * 6.3 + 14) / 2, y: mid - 5,
        "text-anchor": "middle"}, svg, label);
      el("text", {"class": "sc-label-type", x: ox + 4, y: mid + 14}, svg, "output");
    }

    blocks.forEach(function (blk) {
      var id = blk.id, isInput = id === "in";
      var bad = !isInput && failing[id];
      var warned = !isInput && !bad && rowsWith(id, function (r) { return r.f; }).length;
      var cls = isInput ? "sc-input" : "sc-block" + (bad ? " sc-fail" : "") + (expandable(id) ? " sc-folded" : "");
      var g = el("g", {"class": cls}, svg);
      if (!isInput) {
        g.setAttribute("data-node", id);
        if (nodes[id].r !== null) { g.setAttribute("data-row", nodes[id].r); }
        g.setAttribute("tabindex", "0");
        g.setAttribute("aria-label", blk.label + " " + blk.type);
      }
      if (!isInput) {  // the whole column answers the pointer, not only the painted volume
        el("rect", {"class": "sc-hit", x: blk.x, y: mid - up, width: blk.slot, height: labels + 16 - (mid - up),
          fill: "transparent"}, g);
      }
      volume(g, blk.left, mid, blk.geo, isInput ? "#e8e8e8" : colour(id));
      if (!isInput && expandable(id)) {
        var bx = blk.left + blk.geo.w / 2, by = mid + blk.geo.h / 2 + 1;
        el("circle", {"class": "sc-badge", cx: bx, cy: by, r: 6}, g);
        el("text", {x: bx, y: by + 3.5, "text-anchor": "middle", "font-weight": "bold"}, g, "+");
      }
      if (warned) {
        el("circle", {cx: blk.left + blk.geo.w + blk.geo.z, cy: mid - blk.geo.h / 2 - blk.geo.z * 0.8, r: 4,
          fill: "#bf8700"}, g);
      }
      var cx = blk.x + blk.slot / 2;
      el("text", {x: cx, y: labels, "text-anchor": "middle"}, g, cut(blk.label, 18));
      el("text", {"class": "sc-label-type", x: cx, y: labels + 12, "text-anchor": "middle"}, g, cut(blk.type, 20));
      if (!isInput) {
        g.addEventListener("mouseenter", function () { show(id, g); });
        g.addEventListener("mouseleave", function () { if (pinned !== id) { back(); } });
        g.addEventListener("focus", function () { show(id, g); });
        g.addEventListener("blur", function () { if (pinned !== id) { back(); } });
        g.addEventListener("click", function () { activate(id, g); });
        g.addEventListener("keydown", function (ev) {
          if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); activate(id, g); }
        });
      }
    });

    groups.forEach(function (grp) {
      var y = groupsTop + grp.depth * 16, gg = el("g", {"class": "sc-group", "data-node": grp.id}, svg);
      el("line", {x1: grp.x1, y1: y, x2: grp.x2, y2: y}, gg);
      el("line", {x1: grp.x1, y1: y - 4, x2: grp.x1, y2: y}, gg);
      el("line", {x1: grp.x2, y1: y - 4, x2: grp.x2, y2: y}, gg);
      var t = el("text", {x: grp.x1 + 2, y: y + 11}, gg,
        "▴ " + cut(name(grp.id, prefixOf[grp.id]) + " (" + type(grp.id) + ")", Math.max(8, (grp.x2 - grp.x1) / 5.8)));
      el("title", {}, t, "fold " + name(grp.id, ""));
      t.addEventListener("click", function () { open[grp.id] = false; hide(true); draw(); });
    });

    // Leader lines first, so that a later callout covers the lines that pass behind it.
    callouts.forEach(function (c) {
      var blk = byId[c.id], cx = blk.left + blk.geo.w / 2;
      el("line", {x1: cx, y1: labels + 16, x2: cx, y2: calloutsTop + c.lane * CALLOUT.lane, stroke: "#c62828",
        "stroke-dasharray": "2 2"}, svg);
    });
    callouts.forEach(function (c) {
      var fo = el("foreignObject", {x: c.x, y: calloutsTop + c.lane * CALLOUT.lane, width: CALLOUT.w,
        height: CALLOUT.h}, svg);
      var div = document.createElement("div"), listed = [];
      div.className = "sc-callout";
      div.setAttribute("data-node", c.id);
      failing[c.id].forEach(function (r) {
        (rows[r].f || []).forEach(function (f) { if (listed.indexOf(f) < 0) { listed.push(f); } });
      });
      if (!listed.length) {
        div.innerHTML = "<b>fails here</b> " + esc(rows[failing[c.id][0]].n);
      } else {
        var item = findings[listed[0]];
        div.innerHTML = '<p><b>' + esc(item.code) + "</b> " + esc(item.msg) + "</p>" +
          (listed.length > 1 ? "<i>+" + (listed.length - 1) + " more finding(s)</i>" : "") +
          (item.at ? "<code>" + esc(item.at.split(":").slice(0, 2).join(":")) + "</code>" : "") +
          (item.src ? "<code>" + esc(item.src) + "</code>" : "");
      }
      fo.appendChild(div);
    });

    canvas.textContent = "";
    canvas.appendChild(svg);
    if (pinned !== null) {
      var again = canvas.querySelector('.sc-block[data-node="' + pinned + '"]');
      if (again) { again.classList.add("sc-pinned"); show(pinned, again); } else { pinned = null; hide(true); }
    }
  }

  // -- hover and click ----------------------------------------------------------------------
  function describe(id) {
    var n = nodes[id], parts = [], row = n.r !== null ? rows[n.r] : null;
    var title = n.r !== null ? row.n : name(id, "");
    parts.push("<h4>" + esc(title) + " <span>" + esc(type(id)) + "</span></h4><dl>");
    function item(label, value, code) {
      if (value === null || value === undefined || value === "") { return; }
      parts.push("<dt>" + label + "</dt><dd>" + (code ? "<code>" + esc(value) + "</code>" : esc(value)) + "</dd>");
    }
    item("config", row ? row.c : null, true);
    item("input", row ? bracketed(row.i) : (input(id) ? bracketed([input(id)]) : null), true);
    item("output", row ? bracketed(row.o) : (output(id) ? bracketed([output(id)]) : null), true);
    var params = row ? row.p : total(id, "p"), macs = row ? row.m : total(id, "m");
    item("params", params ? commas(params) : "--");
    item("MACs", macs ? count(macs) : "--");
    item("arithmetic", row ? row.a : null, true);
    item("receptive field", fieldOf(id));
    item("source", row ? row.at : null, true);
    parts.push("</dl>");
    var notes = n.r !== null && row.f ? row.f : [];
    if (!notes.length && nodes[id].c.length) {
      rowsWith(id, function (r) { return r.f; }).forEach(function (r) { notes = notes.concat(rows[r].f); });
    }
    notes.slice(0, 4).forEach(function (f) {
      var item = findings[f];
      parts.push('<div class="sc-tip-finding"><b>' + esc(item.code) + "</b> " + esc(item.msg) +
        (item.src ? "<br><code>" + esc(item.at) + "  " + esc(item.src) + "</code>" : "") + "</div>");
    });
    if (expandable(id)) {
      parts.push('<div class="sc-more">click to open: ' + n.c.length + " block(s) inside</div>");
    }
    return parts.join("");
  }
  function show(id, g) {
    tip.innerHTML = describe(id);
    tip.hidden = false;
    tip.setAttribute("data-node", id);
    // Below the block and its labels: the flow stays readable on either side of it.
    var b = g.getBoundingClientRect(), o = box.getBoundingClientRect();
    var left = Math.max(0, Math.min(b.left - o.left, o.width - tip.offsetWidth - 4));
    tip.style.left = left + "px";
    tip.style.top = (b.bottom - o.top + 6) + "px";
    // A pinned tip stays inside the picture's box rather than over the table below it.
    box.style.minHeight = pinned === id ? (b.bottom - o.top + 12 + tip.offsetHeight) + "px" : "";
  }
  function back() {  // leaving a block: the pinned block's tip again, or none
    var held = pinned !== null ? canvas.querySelector(".sc-pinned") : null;
    if (held) { show(pinned, held); } else { hide(); }
  }
  function hide(force) {
    if (force || pinned === null) { tip.hidden = true; tip.removeAttribute("data-node"); box.style.minHeight = ""; }
    if (force) { unpin(); }
  }
  function unpin() {
    pinned = null;
    Array.prototype.forEach.call(canvas.querySelectorAll(".sc-pinned"), function (e) { e.classList.remove("sc-pinned"); });
  }
  function activate(id, g) {
    if (expandable(id)) {
      open[id] = true;
      if (wrapsRun(id)) { open[nodes[id].c[0]] = true; }
      pinned = null; hide(true); draw(); return;
    }
    var was = pinned === id;
    unpin();
    if (!was) { pinned = id; g.classList.add("sc-pinned"); show(id, g); } else { hide(true); }
  }
  function reveal(row) {  // open every block above a row, then point at it
    var id = 0;
    while (nodes[id].r !== row && nodes[id].c.length) {
      open[id] = true;
      var next = nodes[id].c.filter(function (c) { return nodes[c].lo <= row && row < nodes[c].hi; })[0];
      if (next === undefined) { break; }
      id = next;
    }
    draw();
    var g = canvas.querySelector('.sc-block[data-node="' + id + '"]');
    if (g) {
      if (g.scrollIntoView) { g.scrollIntoView({block: "nearest", inline: "center"}); }
      unpin(); pinned = id; g.classList.add("sc-pinned"); show(id, g);
    }
  }

  root.querySelector(".sc-toolbar").addEventListener("click", function (ev) {
    var act = ev.target.getAttribute && ev.target.getAttribute("data-act");
    if (!act) { return; }
    nodes.forEach(function (n, id) { open[id] = act === "expand" ? n.c.length > 0 : id === 0; });
    hide(true);
    draw();
  });

  // -- the table: fold by depth or row by row -----------------------------------------------
  var table = root.querySelector(".sc-layers");
  var trs = Array.prototype.slice.call(table.querySelectorAll("tbody tr"));
  var folded = trs.map(function () { return false; });
  var depths = trs.map(function (tr) { return Number(tr.getAttribute("data-depth")); });
  function refold() {
    var hiddenBelow = Infinity;
    trs.forEach(function (tr, i) {
      if (depths[i] <= hiddenBelow) { hiddenBelow = Infinity; }
      tr.hidden = depths[i] > hiddenBelow;
      if (!tr.hidden && folded[i]) { hiddenBelow = depths[i]; }
      var button = tr.querySelector("button.sc-toggle");
      if (button) {
        button.setAttribute("aria-expanded", String(!folded[i]));
        button.textContent = folded[i] ? "▸" : "▾";
      }
    });
  }
  function toDepth(depth) {
    trs.forEach(function (tr, i) { folded[i] = depths[i] >= depth && !!tr.querySelector("button.sc-toggle"); });
    Array.prototype.forEach.call(table.querySelectorAll(".sc-depths button"), function (b) {
      b.setAttribute("aria-pressed", String(Number(b.getAttribute("data-depth")) === depth));
    });
    refold();
  }
  table.addEventListener("click", function (ev) {
    var t = ev.target;
    if (t.matches("button[data-depth]")) { toDepth(Number(t.getAttribute("data-depth"))); return; }
    var tr = t.closest("tr[data-row]");
    if (!tr) { return; }
    var i = trs.indexOf(tr);
    if (t.matches("button.sc-toggle")) { folded[i] = !folded[i]; refold(); return; }
    if (t.matches("a.sc-name")) { ev.preventDefault(); reveal(Number(tr.getAttribute("data-row"))); box.scrollIntoView({block: "nearest"}); }
  });
  toDepth(Number(table.getAttribute("data-start-depth")));
  draw();
  root.setAttribute("data-drawn", "1");
})
