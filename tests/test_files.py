"""What shapecheck writes keeps the kind of file it writes to: --output-file and --fix
through symbolic links, onto FIFOs, across hard links, with the owner and mode kept, never
into a read-only file or into code installed outside the project. Real links, real
permissions; the owner test needs root to hand a file to another uid."""
from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import threading
from pathlib import Path

import pytest

from shapecheck.cli import main

EXAMPLES = Path(__file__).parent.parent / "examples"
FIXED = "x = x.flatten(1)"  # what --fix makes of quiz_c's view(-1, 20 * 12 * 12)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's project folder with pyproject.toml and the broken quiz net in it."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "pyproject.toml").write_text("[project]\nname = 'mine'\n")
    shutil.copy(EXAMPLES / "quiz_c.py", folder / "net.py")
    monkeypatch.chdir(folder)
    return folder


def test_output_file_through_a_symlink_writes_its_target_and_keeps_the_link(project: Path) -> None:
    (project / "reports").mkdir()
    (project / "reports" / "real.json").write_text("old")
    link = project / "latest.json"
    link.symlink_to(project / "reports" / "real.json")
    main(["net.py:Net", "--input", "3x64x64", "--format", "json", "--output-file", str(link)])
    assert link.is_symlink()
    assert json.loads((project / "reports" / "real.json").read_text())["model"]["name"] == "Net"


def test_output_file_onto_a_fifo_writes_into_it(project: Path) -> None:
    fifo = project / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    main(["net.py:Net", "--input", "3x64x64", "--format", "json", "--output-file", str(fifo)])
    reader.join(30)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # not replaced by a regular file
    assert json.loads(got[0])["model"]["name"] == "Net"


def test_fix_through_a_symlink_fixes_the_real_file(project: Path) -> None:
    (project / "src").mkdir()
    (project / "net.py").rename(project / "src" / "net.py")
    (project / "net.py").symlink_to(project / "src" / "net.py")
    main(["net.py:Net", "--input", "3x64x64", "--fix"])
    assert (project / "net.py").is_symlink()
    assert FIXED in (project / "src" / "net.py").read_text()


def test_fix_keeps_hard_links_joined(project: Path) -> None:
    os.link(project / "net.py", project / "same_net.py")
    inode = os.stat(project / "net.py").st_ino
    main(["net.py:Net", "--input", "3x64x64", "--fix"])
    assert os.stat(project / "net.py").st_ino == os.stat(project / "same_net.py").st_ino == inode
    assert FIXED in (project / "same_net.py").read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a file to another user needs root")
def test_fix_keeps_the_owner_and_mode_of_a_file_it_rewrites(project: Path) -> None:
    os.chown(project / "net.py", 1234, 4321)
    os.chmod(project / "net.py", 0o640)
    main(["net.py:Net", "--input", "3x64x64", "--fix"])
    after = os.stat(project / "net.py")
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (1234, 4321, 0o640)
    assert FIXED in (project / "net.py").read_text()


def test_fix_refuses_a_read_only_file_in_one_line(project: Path, capsys: pytest.CaptureFixture) -> None:
    before = (project / "net.py").read_bytes()
    os.chmod(project / "net.py", 0o444)
    assert main(["net.py:Net", "--input", "3x64x64", "--fix"]) == 2
    err = capsys.readouterr().err
    assert "net.py is read-only" in err and len(err.strip().splitlines()) == 1
    assert (project / "net.py").read_bytes() == before


def test_fix_leaves_code_installed_outside_the_project(project: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    """A layer library on PYTHONPATH, as another environment's package: found, reported, not rewritten."""
    library = tmp_path / "elsewhere" / "vendored_layers"
    library.mkdir(parents=True)
    (library / "__init__.py").write_text("")
    shutil.copy(EXAMPLES / "quiz_c.py", library / "quiz.py")
    before = (library / "quiz.py").read_bytes()
    monkeypatch.syspath_prepend(str(tmp_path / "elsewhere"))
    (project / "model.py").write_text("from vendored_layers.quiz import Net\n")
    try:
        assert main(["model.py:Net", "--input", "3x64x64", "--fix"]) == 1
    finally:  # the package stays imported otherwise, for every later test in this process
        for name in ("vendored_layers", "vendored_layers.quiz", "model"):
            sys.modules.pop(name, None)
    assert (library / "quiz.py").read_bytes() == before
    assert "is outside the project" in capsys.readouterr().err
