"""Every Python snippet of the READMEs runs, against the stand-in service on loopback."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from fake_service import FakeService
from readme_snippets import snippets

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
