"""``--format html`` and the notebook view, checked in a real headless Chromium.

Each page is written by the CLI or the renderer, opened from disk (no server, no network)
and driven over the DevTools protocol (tests/chromium.py). Chromium is required: the
README's test command installs it (.ci/chromium), and without it these tests fail saying how.
"""
from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision

import shapecheck
from shapecheck.cli import main
from shapecheck.render import flow, html
from shapecheck.zoo import ZOO
from tests.chromium import Browser, BrowserError

BLOCKS = "document.querySelectorAll('.sc-block').length"
TIP = "document.querySelector('.sc-tip').hidden ? null : document.querySelector('.sc-tip').innerText"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        chromium = Browser()
    except BrowserError as exc:
        missing = str(exc)
    else:
        missing = ""
    if missing:  # outside the except: pytest then prints the reason once, not a chained traceback
        pytest.fail(f"the HTML tests need headless Chromium: {missing}", pytrace=False)
    with chromium:
        yield chromium


def leaves(report: shapecheck.Report) -> int:
    return sum(layer.is_leaf for layer in report.layers)


@functools.cache
def big_report(name: str) -> shapecheck.Report:
    """A torchvision model built on meta (no weight memory), analyzed once for every test here."""
    factory = getattr(torchvision.models.optical_flow if name.startswith("raft") else torchvision.models, name)
    with torch.device("meta"):
        model = factory()
    return shapecheck.analyze(model, ["3x128x128", "3x128x128"] if name.startswith("raft") else "3x224x224",
                              batch=1)


def test_the_broken_quiz_shows_its_failing_layers_in_red(in_repo, tmp_path, browser):
    page = tmp_path / "quiz_c.html"
    assert main(["examples/quiz_c.py:Net", "-i", "3x64x64", "--format", "html", "--output-file", str(page)]) == 1
    browser.open(page)
    assert browser.errors == []
    # One block per traced layer: conv1, relu, pool, conv2, relu, pool, view, fc1, relu, fc2.
    assert browser.evaluate(BLOCKS) == 10
    names = browser.evaluate("[...document.querySelectorAll('.sc-block.sc-fail')].map(b => b.getAttribute("
                             "'aria-label'))")
    assert names == ["view Tensor.view", "fc1 Linear"]
    callouts = browser.evaluate("[...document.querySelectorAll('.sc-callout')].map(c => c.innerText)")
    assert "SHP003" in callouts[0] and "x = x.view(-1, 20 * 12 * 12)" in callouts[0]
    assert "SHP001" in callouts[1] and "examples/quiz_c.py:11" in callouts[1]
    assert "self.fc1 = nn.Linear(20 * 12 * 12, 50)" in callouts[1]
    # The edges carry the shapes, the course's way: 20x13x13 into the view, 3380 out of it.
    labels = browser.evaluate("[...document.querySelectorAll('.sc-edge-label')].map(t => t.textContent)")
    assert labels == ["3x64x64", "10x60x60", "10x60x60", "10x30x30", "20x26x26", "20x26x26", "20x13x13", "3380",
                      "50", "50", "5"]


def test_hovering_a_block_shows_its_arithmetic_and_receptive_field(in_repo, tmp_path, browser):
    page = tmp_path / "quiz_c.html"
    main(["examples/quiz_c.py:Net", "-i", "3x64x64", "--format", "html", "--output-file", str(page)])
    browser.open(page)
    assert browser.evaluate(TIP) is None
    browser.hover('.sc-block[aria-label="conv1 Conv2d"]')
    tip = browser.evaluate(TIP)
    assert "64 -> floor((64 + 2*0 - 5) / 1) + 1 = 60" in tip
    assert "in_channels=3, out_channels=10, kernel_size=(5, 5)" in tip
    assert "760" in tip and "5.40M" in tip  # parameters and MACs
    assert "5x5 input pixels" in tip
    browser.hover('.sc-block[aria-label="pool MaxPool2d"]')
    assert "16x16 input pixels, stride 4" not in browser.evaluate(TIP)  # the first pool: 6x6
    assert "6x6 input pixels, stride 2" in browser.evaluate(TIP)
    browser.hover('.sc-block[aria-label="fc1 Linear"]')
    tip = browser.evaluate(TIP)
    assert "expects 2880 (20 * 12 * 12) features but receives 3380" in tip
    assert "the whole input" in tip and "SHP001" in tip
    assert browser.errors == []


def test_a_clean_unet_draws_its_skip_concatenations_as_merges(in_repo, tmp_path, browser):
    page = tmp_path / "unet.html"
    assert main(["examples/unet.py:UNet", "-i", "3x64x64", "--format", "html", "--output-file", str(page)]) == 0
    browser.open(page)
    assert browser.errors == []
    assert browser.evaluate("document.querySelectorAll('.sc-fail').length") == 0
    # Each double_conv is one block until opened: 4 down, 3 pools, 3 up, 3 cats, 3 decoders, the head.
    assert browser.evaluate(BLOCKS) == 17
    arcs = browser.evaluate("[...document.querySelectorAll('.sc-skip')].length")
    assert arcs == 3  # the encoder maps that skip ahead to each torch.cat
    browser.click('.sc-block[aria-label="down1 Sequential"]')
    assert browser.evaluate(BLOCKS) == 17 - 1 + 6
    browser.click('button[data-act="expand"]')
    report = shapecheck.analyze(_unet(), "3x64x64")
    assert browser.evaluate(BLOCKS) == leaves(report) == 7 * 6 + 3 + 3 + 3 + 1


def _unet() -> torch.nn.Module:
    import importlib.util

    spec = importlib.util.spec_from_file_location("unet", Path("examples/unet.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.UNet()


BIG = [
    # model, what the first view folds its repeats into, page-size bound in bytes
    ("resnet152", "Bottleneck ×36", 1_000_000),
    ("vit_h_14", "EncoderBlock ×32", 1_000_000),
    ("raft_large", "loop ×12", 2_000_000),  # 1,736 rows, the refinement loop run 12 times
]


@pytest.mark.parametrize("name, folded, most", BIG, ids=[b[0] for b in BIG])
def test_big_models_fold_their_repeats_and_stay_responsive(tmp_path, browser, name, folded, most):
    report = big_report(name)
    page = tmp_path / f"{name}.html"
    page.write_text(html.render(report))
    assert page.stat().st_size < most
    seconds = browser.open(page)
    assert seconds < 10, f"{name} took {seconds:.1f} s to load"
    assert browser.errors == []
    first = browser.evaluate(BLOCKS)
    assert first == len(flow.shown(flow.tree(report.layers))) <= flow.BUDGET
    types = browser.evaluate("[...document.querySelectorAll('.sc-block')].map(b => b.getAttribute('aria-label'))")
    assert any(folded in label for label in types), types
    browser.click('button[data-act="expand"]')
    assert browser.evaluate(BLOCKS) == leaves(report)
    browser.click('button[data-act="collapse"]')
    assert browser.evaluate(BLOCKS) == len(flow.tree(report.layers)[0].children)
    assert browser.errors == []


def test_opening_bottleneck_x36_shows_the_36_blocks_and_the_table_folds_by_depth(tmp_path, browser):
    report = big_report("resnet152")
    page = tmp_path / "resnet152.html"
    page.write_text(html.render(report))
    browser.open(page)
    assert browser.evaluate(BLOCKS) == 11
    browser.click('.sc-block[aria-label="layer3 Bottleneck ×36"]')
    assert browser.evaluate(BLOCKS) == 11 - 1 + 36
    browser.hover('.sc-block[aria-label="7 Bottleneck"]')
    assert "[1, 1024, 14, 14]" in browser.evaluate(TIP)
    # 574 rows: the table opens at depth 2, every row a click away.
    shown = "[...document.querySelectorAll('.sc-layers tbody tr')].filter(r => !r.hidden).length"
    assert browser.evaluate(shown) == sum(layer.depth <= 2 for layer in report.layers)
    browser.click('.sc-depths button[data-depth="1"]')
    assert browser.evaluate(shown) == sum(layer.depth <= 1 for layer in report.layers)
    browser.click('tr[data-row="0"] button.sc-toggle')  # fold the model's own row: only it remains
    assert browser.evaluate(shown) == 1
    # A row's name in the table points at its block, opening what holds it.
    browser.click('tr[data-row="0"] button.sc-toggle')
    browser.click('.sc-depths button[data-depth="4"]')
    row = report.layer("layer4.2.conv3").index
    browser.click(f'tr[data-row="{row}"] a.sc-name')
    assert f'"{row}"' in browser.evaluate("JSON.stringify(document.querySelector('.sc-pinned').getAttribute('data-row'))")
    assert "layer4.2.conv3" in browser.evaluate(TIP)
    assert browser.errors == []


def test_every_example_and_zoo_model_draws_in_one_page(in_repo, tmp_path, browser):
    """Several reports in one page, as project mode and a notebook have them: each draws its own."""
    from shapecheck import pipeline
    from shapecheck.spec import parse_input
    from shapecheck.target import parse_target

    targets = [("examples/" + p.name + ":" + cls, size) for p, cls, size in _examples()]
    targets += [(f"shapecheck.zoo:{name}", spec.input) for name, spec in ZOO.items()]
    reports = [pipeline.run(parse_target(t), pipeline.Options(inputs=(parse_input(size),))) for t, size in targets]
    reports.append(shapecheck.Report("Nothing", (), 1, "meta", (), shapecheck.Totals(0, 0, 0, 0, 0, 0, 0), ()))
    page = tmp_path / "all.html"
    page.write_text(html.render_all(reports))
    browser.open(page)
    assert browser.errors == []
    drawn = browser.evaluate("[...document.querySelectorAll('.shapecheck')].map(r => [r.getAttribute('data-drawn'), "
                             "r.querySelectorAll('.sc-block').length, r.querySelectorAll('.sc-fail').length > 0])")
    assert drawn == [["1", len(flow.shown(flow.tree(r.layers))), not r.ok] for r in reports]


def _examples() -> list[tuple[Path, str, str]]:
    found = []
    for path in sorted(Path("examples").glob("*.py")):
        cls = re.search(r"^class (\w+)\(nn\.Module\)", path.read_text(), re.M).group(1)
        size = "3x32x32" if path.stem in ("simple_cnn", "missing_import", "one_layer") else \
            "3x150x150" if path.stem == "cat_dog_cnn" else "3x64x64"
        found.append((path, cls, size))
    return found


def test_notebooks_display_the_same_view_and_a_short_text(in_repo, tmp_path, browser):
    report = big_report("raft_large")
    assert re.fullmatch(r"<Report RAFT input 3x128x128, 3x128x128: 1736 layers, 5,257,536 params, 0 error\(s\) "
                        r"\[SHP103 \S+, SHP103 \S+, SHP103 \S+, \+\d+ more\]>", repr(report)), repr(report)
    fragment = report._repr_html_()
    assert fragment.startswith('<div class="shapecheck"') and "<html" not in fragment
    # Jupyter puts the fragment in its own page, next to other outputs: two of them here.
    quiz = pipeline_report("examples/quiz_c.py:Net", "3x64x64")
    page = tmp_path / "notebook.html"
    page.write_text(f"<!DOCTYPE html><html><body><p>In [1]:</p>{quiz._repr_html_()}<p>In [2]:</p>{fragment}"
                    "</body></html>")
    browser.open(page)
    assert browser.errors == []
    assert browser.evaluate("[...document.querySelectorAll('.shapecheck')].map(r => "
                            "r.querySelectorAll('.sc-block').length)") == [10, 33]
    browser.hover('.shapecheck:first-of-type .sc-block[aria-label="conv1 Conv2d"]')
    assert "= 60" in browser.evaluate(TIP)


def test_a_report_shown_twice_by_a_notebook_that_runs_scripts_detached_draws_twice(in_repo, tmp_path, browser):
    """The classic notebook sets the output's HTML, then evaluates each script on its own,
    where document.currentScript is null: each copy must still find its own div."""
    fragment = pipeline_report("examples/quiz_c.py:Net", "3x64x64")._repr_html_()
    page = tmp_path / "classic.html"
    page.write_text("<!DOCTYPE html><html><body><div id=out></div></body></html>")
    browser.open(page)
    browser.evaluate(f"""(() => {{
        const out = document.getElementById("out");
        out.innerHTML = {json.dumps(fragment)} + {json.dumps(fragment)};  // inserted scripts do not run
        for (const s of out.querySelectorAll("script:not([type])")) (0, eval)(s.textContent);
    }})()""")
    assert browser.errors == []
    assert browser.evaluate("[...document.querySelectorAll('.shapecheck')].map(r => "
                            "r.querySelectorAll('.sc-block').length)") == [10, 10]


def pipeline_report(target: str, size: str) -> shapecheck.Report:
    from shapecheck import pipeline
    from shapecheck.spec import parse_input
    from shapecheck.target import parse_target

    return pipeline.run(parse_target(target), pipeline.Options(inputs=(parse_input(size),)))


def test_the_page_needs_no_network(in_repo, capsys):
    assert main(["examples/quiz_c.py:Net", "-i", "3x64x64", "--format", "html"]) == 1
    page = capsys.readouterr().out
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # Nothing to fetch: no src, no stylesheet link, no import, no URL but the SVG namespace.
    assert not re.search(r"\bsrc=|<link|@import|url\(\s*['\"]?http", page)
    assert set(re.findall(r"https?://[^\s\"'<>)]+", page)) == {"http://www.w3.org/2000/svg"}


def test_output_file_errors_are_one_line_usage_errors(in_repo, tmp_path, capsys):
    missing = tmp_path / "no" / "such" / "folder" / "r.html"
    assert main(["examples/quiz_c.py:Net", "-i", "3x64x64", "--format", "html", "--output-file", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err
    assert main(["examples/quiz_c.py:Net", "-i", "3x64x64", "--output-file", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    # Any format goes to the file; nothing to stdout.
    target = tmp_path / "report.txt"
    assert main(["examples/quiz_a.py:Net", "-i", "3x64x64", "--output-file", str(target)]) == 0
    assert capsys.readouterr().out == "" and target.read_text().startswith("Net (examples/quiz_a.py)")
    assert [p.name for p in tmp_path.iterdir()] == ["report.txt"]  # no temporary file left


MARKUP_NET = """import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8 * 30 * 30, 2)  # COMMENT

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))
"""


@pytest.mark.parametrize("comment", ["<!-- <script> alert(1) </script> -->", "</script><script>alert(2)</script>"])
def test_markup_in_a_source_comment_stays_text_and_the_picture_draws(comment, tmp_path, monkeypatch, browser):
    monkeypatch.chdir(tmp_path)
    name = f"markup_{len(comment)}"  # one file name per case: the source readers cache by path
    (tmp_path / f"{name}.py").write_text(MARKUP_NET.replace("COMMENT", comment))
    page = tmp_path / "markup.html"
    assert main([f"{name}.py:Net", "-i", "3x64x64", "--format", "html", "--output-file", str(page)]) == 1
    data = re.search(r'<script type="application/json" class="sc-data">(.*?)</script>', page.read_text()).group(1)
    assert "<" not in data
    assert comment in json.dumps(json.loads(data), ensure_ascii=False)  # kept, as text
    browser.open(page)
    assert browser.errors == []
    assert browser.evaluate(BLOCKS) == 3  # conv, flatten, fc: the picture drew
    callouts = browser.evaluate("[...document.querySelectorAll('.sc-callout')].map(c => c.innerText)")
    assert comment in callouts[0]
    assert browser.evaluate("document.querySelectorAll('script').length") == 2  # the data and the view, no more
