"""Both distributions, as installed, carry their license and full metadata (what PyPI and pip show)."""

from __future__ import annotations

from importlib.metadata import distribution, entry_points

import pytest

PYTHONS = ("3.10", "3.11", "3.12", "3.13")


@pytest.mark.parametrize("name", ["flowers-client", "flowers-serving"])
def test_license_and_metadata(name: str) -> None:
    dist = distribution(name)
    meta = dist.metadata
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    shipped = [f for f in dist.files or [] if f.name == "LICENSE"]
    assert shipped, f"{name}: LICENSE is not in the wheel"
    assert "MIT License" in shipped[0].read_text()
    for field in ("Summary", "Author", "Keywords", "Requires-Python"):
        assert meta[field], f"{name}: no {field}"
    assert meta["Requires-Python"] == ">=3.10"
    assert meta["Description-Content-Type"] == "text/markdown"
    assert len(meta["Description"] or "") > 200  # the package README
    classifiers = meta.get_all("Classifier") or []
    for python in PYTHONS:
        assert f"Programming Language :: Python :: {python}" in classifiers
    assert "Typing :: Typed" in classifiers
    assert any(c.startswith("Development Status ::") for c in classifiers)
    assert any(f.name == "py.typed" for f in dist.files or []), f"{name}: no py.typed marker"


def test_the_client_installs_the_flowers_command() -> None:
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "flowers"]
    assert script.value == "flowers_client.cli:run"
