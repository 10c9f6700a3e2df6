"""The package's table of contents: every listed name loads (lazily) from where it is declared."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import flowers_client


def declared() -> dict[str, str]:
    """name -> module, from the imports that type checkers read in ``__init__.py``."""
    tree = ast.parse(Path(flowers_client.__file__).read_text(encoding="utf-8"))
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("flowers_client."):
            for alias in node.names:
                found[alias.asname or alias.name] = node.module
    return found


def test_every_public_name_is_declared_and_loads_from_its_module() -> None:
    names = declared()
    assert set(names) == set(flowers_client.__all__)
    for name, module in names.items():
        assert getattr(flowers_client, name) is getattr(importlib.import_module(module), name), name
    assert sorted(dir(flowers_client)) == sorted(flowers_client.__all__)


def test_importing_the_package_or_the_cli_loads_no_http_or_models() -> None:
    code = (
        "import sys, flowers_client, flowers_client.cli; "
        "print(sorted(m for m in ('httpx', 'pydantic', 'tenacity', 'tqdm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
