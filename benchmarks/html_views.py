"""The HTML report in headless Chromium: the README's screenshots, and how the big models fare.

    python benchmarks/html_views.py           # docs/html-quiz_c.png and docs/html-unet.png
    python benchmarks/html_views.py --big     # page size and load times: resnet152, vit_h_14, RAFT

Chromium is driven as tests/test_html.py drives it (tests/chromium.py: the DevTools
protocol on a pipe); install it with ``apt-get install -y chromium``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from shapecheck.cli import main as shapecheck  # noqa: E402
from tests.chromium import Browser  # noqa: E402

torch.set_num_threads(1)

# (target, input, picture, the block whose hover the picture shows pinned)
SHOTS = [
    ("examples/quiz_c.py:Net", "3x64x64", "docs/html-quiz_c.png", "conv1 Conv2d"),
    ("examples/unet.py:UNet", "3x64x64", "docs/html-unet.png", "up2 ConvTranspose2d"),
]


def screenshots(browser: Browser, folder: Path) -> None:
    for target, size, picture, pinned in SHOTS:
        page = folder / (Path(picture).stem + ".html")
        shapecheck([target, "--input", size, "--format", "html", "--output-file", str(page), "--exit-zero"])
        browser.resize(1400, 900)
        browser.open(page)
        # As wide as the picture, so that nothing scrolls out of the shot.
        width = browser.evaluate("document.querySelector('.sc-canvas svg').getBoundingClientRect().width")
        browser.resize(int(width) + 60, 900, scale=1.5)
        browser.open(page)
        browser.click(f'.sc-block[aria-label="{pinned}"]')
        browser.screenshot(ROOT / picture, ".shapecheck header", ".sc-flow", ".sc-tip")
        assert not browser.errors, browser.errors
        print(f"wrote {picture}")


def big(browser: Browser, folder: Path) -> None:
    import torchvision

    import shapecheck as api
    from shapecheck.render import html

    models = [("resnet152", torchvision.models.resnet152, "3x224x224"),
              ("vit_h_14", torchvision.models.vit_h_14, "3x224x224"),
              ("raft_large", torchvision.models.optical_flow.raft_large, ["3x128x128", "3x128x128"])]
    print("| model | rows | page | render | load in Chromium | blocks first | expand all |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    browser.resize(1400, 900)
    for name, factory, size in models:
        with torch.device("meta"):
            model = factory()
        report = api.analyze(model, size, batch=1)
        started = time.perf_counter()
        text = html.render(report)
        rendered = time.perf_counter() - started
        page = folder / f"{name}.html"
        page.write_text(text)
        loaded = browser.open(page)
        first = browser.evaluate("document.querySelectorAll('.sc-block').length")
        started = time.perf_counter()
        browser.click('button[data-act="expand"]')
        blocks = browser.evaluate("document.querySelectorAll('.sc-block').length")
        expanded = time.perf_counter() - started
        assert not browser.errors, browser.errors
        print(f"| {name} | {len(report.layers):,} | {len(text.encode()) / 2**20:.2f} MiB | {rendered:.2f} s "
              f"| {loaded:.2f} s | {first} | {blocks:,} blocks in {expanded:.2f} s |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", action="store_true", help="measure resnet152, vit_h_14 and RAFT instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, Browser() as browser:
        (big if args.big else screenshots)(browser, Path(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
