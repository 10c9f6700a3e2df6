"""Every Python snippet and every `$ flowers` line of the READMEs runs, against the stand-in service on loopback."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fake_service import FakeService
from readme_snippets import commands, snippets

SNIPPETS = snippets()


def test_the_readmes_have_snippets() -> None:
    assert len(SNIPPETS) >= 5


@pytest.mark.parametrize(("where", "code"), SNIPPETS, ids=[where for where, _ in SNIPPETS])
def test_snippet_runs(
    where: str, code: str, service: FakeService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rose.jpg").write_text("a rose")
    (tmp_path / "moon.jpg").write_text("notflower: the moon")
    (tmp_path / "photos" / "more").mkdir(parents=True)
    for name in ("photos/a.jpg", "photos/b.png", "photos/more/c.jpg"):
        (tmp_path / name).write_text(f"photo {name}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLOWERS_ENDPOINT", service.url)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, where, "exec"), {"__name__": "__main__"})  # noqa: S102 - our own README
    assert printed.getvalue().strip(), f"{where} printed nothing"
    assert service.requests, f"{where} sent nothing"
    if "reject=True" in code:
        assert "not a flower (flower score 0.04); closest: " in printed.getvalue()


COMMANDS = commands()


def test_the_readmes_show_the_cli_streaming_and_resuming() -> None:
    shown = " ".join(command for _, command in COMMANDS)
    assert "--resume" in shown
    assert "--json" in shown


@pytest.mark.parametrize("readme", sorted({where.split(":")[0] for where, _ in COMMANDS}))
def test_console_examples_run(readme: str, service: FakeService, tmp_path: Path) -> None:
    """The README's `$ flowers ...` lines, in order, in a shell, as a reader would type them.

    Before a `--resume` line the results file is cut back to its first line, as a
    Ctrl-C would leave it: the resumed run must send only what is missing.
    """
    for name in ("rose.jpg", "photos/a.jpg", "photos/b.png", "photos/more/c.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"photo {name}")
    env = {
        **os.environ,
        "FLOWERS_ENDPOINT": service.url,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("FLOWERS_API_KEY", None)
    results = tmp_path / "results.jsonl"
    for where, command in (c for c in COMMANDS if c[0].startswith(f"{readme}:")):
        kept = 0
        if "--resume" in command and results.exists():
            lines = results.read_text().splitlines(keepends=True)
            results.write_text("".join(lines[:1]))
            kept = len(lines[:1])
        sent_before = len(service.requests)
        done = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, f"{where}: {command}\n{done.stderr}"
        assert "Traceback" not in done.stderr
        assert re.search(r"^\d+ classified, 0 failed in ", done.stderr, re.MULTILINE), done.stderr
        if "--resume" in command:
            inputs = [json.loads(line)["input"] for line in results.read_text().splitlines()]
            assert sorted(inputs) == ["photos/a.jpg", "photos/b.png", "photos/more/c.jpg"][: len(inputs)]
            assert len(set(inputs)) == len(inputs) == 3
            assert len(service.requests) - sent_before == 3 - kept
        if "--json" in command and ">" not in command:
            assert all(isinstance(json.loads(line), dict) for line in done.stdout.splitlines())
