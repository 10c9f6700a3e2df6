"""No tracked file records where this machine keeps things: reports, metadata and docs travel to other machines."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOT_CHECKED = {
    "docker/Dockerfile",  # its paths are inside the Lambda image, not of any machine we build on
    "tools/tests/test_tracked_files.py",  # this file: the patterns and their examples
}
# Home folders, root's home and temporary folders of Linux, macOS and Windows.
MACHINE_PATH = re.compile(
    r"(?<![\w.$-])(?:/root/|/home/[\w.-]+|/Users/[\w.-]+|/tmp/[\w.-]|/private/var/|/var/folders/|[A-Za-z]:\\Users\\)"
)


def _tracked() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files")
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in names.decode().split("\0") if name and name not in NOT_CHECKED]


def _text(path: Path) -> str | None:
    if path.is_symlink():  # git stores a link as its target: an absolute target is a path of this machine
        return os.readlink(path)
    data = path.read_bytes() if path.is_file() else b""
    return None if b"\0" in data[:8192] else data.decode("utf-8", errors="replace")


def test_the_pattern_finds_machine_paths() -> None:
    for found in ("/root/.cache/x", "/home/ana/flowers", "/Users/bob/x", "/tmp/floatdir/f.tflite", r"C:\Users\ana"):
        assert MACHINE_PATH.search(f'"model_file": "{found}"'), found
    for fine in ("model/runs/x", "../shared/datasets/oxford102", "$TMPDIR/flowers", "~/.cache", "https://a.b/tmp/x"):
        assert not MACHINE_PATH.search(fine), fine


def test_a_tracked_link_is_read_as_its_target(tmp_path: Path) -> None:
    link = tmp_path / "runs"
    link.symlink_to("/home/ana/flowers/model/runs")
    text = _text(link)
    assert text is not None
    assert MACHINE_PATH.search(text)


def test_no_tracked_link_points_outside_the_clone() -> None:
    absolute = [str(p.relative_to(ROOT)) for p in _tracked() if p.is_symlink() and os.path.isabs(os.readlink(p))]
    assert not absolute, f"tracked links with absolute targets (they name a place on one machine): {absolute}"


def test_no_tracked_file_holds_a_path_of_this_machine() -> None:
    # The clone's parent folder is the likeliest to leak (a sibling data set, a sibling checkout).
    parents = [str(p) + "/" for p in (ROOT.parent, ROOT.parent.resolve()) if len(p.parts) > 1]
    offenders = []
    for path in _tracked():
        text = _text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if any(parent in line for parent in parents) or MACHINE_PATH.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:160]}")
    assert not offenders, "absolute paths of a machine in tracked files:\n" + "\n".join(offenders)
