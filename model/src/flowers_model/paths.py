"""Paths as the files we commit record them: relative to the repository, never where this machine keeps it.

``metadata.json`` and the reports travel in git and in the serving wheel; an
absolute path in them would name the build machine's directories and mean
nothing anywhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["portable", "portable_paths", "repository_root"]


def repository_root(start: Path | None = None) -> Path:
    """The git checkout that holds ``start`` (default: the working directory), else ``start`` itself."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return here


def portable(path: str | Path, root: Path | None = None) -> str:
    """``path`` relative to the repository when it lies inside it, else its name alone."""
    resolved = Path(path).resolve()
    root = (root or repository_root()).resolve()
    if resolved.is_relative_to(root):
        return resolved.relative_to(root).as_posix()
    return resolved.name


def portable_paths(values: Mapping[str, Any], keys: Iterable[str], root: Path | None = None) -> dict[str, Any]:
    """A copy of ``values`` with the non-empty paths under ``keys`` made portable."""
    path_keys = set(keys)
    return {k: portable(v, root) if k in path_keys and v else v for k, v in values.items()}
