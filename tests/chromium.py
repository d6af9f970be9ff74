"""Headless Chromium, driven over the DevTools protocol on a pipe.

No driver binary and no websocket library: ``--remote-debugging-pipe`` makes Chromium read
JSON commands on file descriptor 3 and write replies and events on 4, each message ended
by a NUL byte. The tests (tests/test_html.py) and the screenshot script
(benchmarks/html_views.py) use it; Debian's ``chromium`` package is all it needs.
"""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# As root in a container with no network, Chromium needs every one of these: no sandbox (it
# refuses to run as root with one), no GPU, and nothing that phones home or waits on a
# network (QUIC, component updates, sync, first-run pages). A fresh profile each time.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-pipe")
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL = "apt-get install -y chromium (Debian; the README's test command runs .ci/chromium, which does)"


# Copies first, so that neither target descriptor is a source still needed; then exec.
_TRAMPOLINE = """import os, sys
commands, replies = os.dup(int(sys.argv[1])), os.dup(int(sys.argv[2]))
os.dup2(commands, 3)
os.dup2(replies, 4)
os.set_inheritable(3, True)  # dup2 onto itself (a copy that landed on 3) keeps close-on-exec
os.set_inheritable(4, True)
os.execv(sys.argv[3], sys.argv[3:])
"""


class BrowserError(RuntimeError):
    pass


def find() -> str:
    """The Chromium binary: $SHAPECHECK_CHROMIUM, else the first of CANDIDATES on PATH."""
    chosen = os.environ.get("SHAPECHECK_CHROMIUM")
    if chosen:
        return chosen
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserError(f"Chromium was not found (looked for {', '.join(CANDIDATES)} on PATH and "
                       f"$SHAPECHECK_CHROMIUM); install it: {INSTALL}")


class Browser:
    """One headless Chromium with one page. ``with Browser() as browser: browser.open(path)``."""

    def __init__(self, width: int = 1400, height: int = 900, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="shapecheck-chromium-")
        self._log = tempfile.TemporaryFile()  # a file, not a pipe: a full pipe would stall Chromium
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        # Chromium must find the pipes as descriptors 3 and 4. A shell's 3<&12 fails in dash
        # for descriptors above 9 (pytest holds many), so a Python trampoline moves them.
        binary = find()
        self.process = subprocess.Popen(
            [sys.executable, "-c", _TRAMPOLINE, str(commands_read), str(replies_write), binary, *FLAGS,
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"],
            pass_fds=(commands_read, replies_write), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self._log)
        os.close(commands_read)
        os.close(replies_write)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []
        self.errors: list[str] = []
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.resize(width, height)

    # -- the protocol ---------------------------------------------------------------------
    def call(self, method: str, params: dict[str, Any] | None = None, session: bool = True) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        try:
            os.write(self._commands, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise BrowserError("Chromium exited: " + self._stderr()) from None
        while True:
            reply = self._receive()
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})

    def wait_for(self, method: str) -> dict[str, Any]:
        """The next event ``method``, or the one that came while waiting for a reply."""
        for position, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(position)
        while True:
            event = self._receive()
            if event.get("method") == method:
                self.events.remove(event)
                return event

    def _receive(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise BrowserError(f"Chromium did not answer within {self.timeout:.0f} s")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise BrowserError("Chromium exited: " + self._stderr())
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message = json.loads(raw)
        if "method" in message:
            self.events.append(message)
            self._note(message)
        return message

    def _note(self, event: dict[str, Any]) -> None:
        """Console errors and uncaught exceptions, as a developer's console would show them."""
        params = event.get("params", {})
        if event["method"] == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif event["method"] == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif event["method"] == "Log.entryAdded" and params["entry"].get("level") == "error":
            self.errors.append(params["entry"].get("text", ""))

    def _stderr(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    # -- what tests do with a page ---------------------------------------------------------
    def open(self, path: Path) -> float:
        """Load a file and wait for its load event; returns the seconds it took."""
        self.errors.clear()
        self.events.clear()
        started = time.monotonic()
        self.call("Page.navigate", {"url": path.resolve().as_uri()})
        self.wait_for("Page.loadEventFired")
        return time.monotonic() - started

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails'].get('exception', {}).get('description')}")
        return result["result"].get("value")

    def resize(self, width: int, height: int, scale: float = 1) -> None:
        """The viewport's size in CSS pixels; ``scale`` device pixels each (2 for sharp screenshots)."""
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": False})

    def centre(self, selector: str) -> tuple[float, float]:
        """Scroll the element into view; its centre in the viewport."""
        box = self.evaluate(f"""(() => {{
            const e = document.querySelector({json.dumps(selector)});
            if (!e) return null;
            e.scrollIntoView({{block: "center", inline: "center"}});
            const r = e.getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2];
        }})()""")
        if box is None:
            raise BrowserError(f"no element matches {selector}")
        return box[0], box[1]

    def hover(self, selector: str) -> None:
        x, y = self.centre(selector)
        self.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})

    def click(self, selector: str) -> None:
        x, y = self.centre(selector)
        self.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def screenshot(self, path: Path, *selectors: str, padding: int = 8) -> None:
        """A PNG of the elements' bounding box (all of them: a block and its open tip), or of the viewport."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": True}
        if selectors:
            box = self.evaluate(f"""(() => {{
                const rects = {json.dumps(selectors)}.map(s => document.querySelector(s))
                    .filter(e => e && !e.hidden).map(e => e.getBoundingClientRect());
                const left = Math.min(...rects.map(r => r.left)), top = Math.min(...rects.map(r => r.top));
                const right = Math.max(...rects.map(r => r.right)), bottom = Math.max(...rects.map(r => r.bottom));
                return [left + scrollX, top + scrollY, right - left, bottom - top];
            }})()""")
            params["clip"] = {"x": max(0, box[0] - padding), "y": max(0, box[1] - padding),
                              "width": box[2] + 2 * padding, "height": box[3] + 2 * padding, "scale": 1}
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", params)["data"]))

    # -- lifetime ----------------------------------------------------------------------------
    def close(self) -> None:
        try:
            self.call("Browser.close", session=False)
        except (BrowserError, OSError):
            pass
        for fd in (self._commands, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
