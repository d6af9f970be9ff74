from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# One intra-op thread: measured 3.7x faster than two on the 2-core CI machines.
torch.set_num_threads(1)


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from the repository root, so paths in diagnostics read examples/....py."""
    monkeypatch.chdir(ROOT)
    return ROOT


@pytest.fixture(autouse=True)
def _isolated_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # Loading a user's file puts its folder on sys.path; keep that from leaking between tests.
    import sys

    monkeypatch.setattr(sys, "path", list(sys.path))
