"""The Python snippets of the READMEs that document the client, for type-checking and running.

``python readme_snippets.py DIR`` writes each one to ``DIR/readme_<n>.py`` (for
``mypy --strict DIR``, in ``nox -s typecheck``); ``test_readme.py`` runs them, and
the ``$ flowers ...`` lines of the console blocks too.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
READMES = [ROOT / "README.md", ROOT / "packages" / "flowers-client" / "README.md"]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
_CONSOLE = re.compile(r"^```console\n(.*?)^```", re.MULTILINE | re.DOTALL)


def snippets() -> list[tuple[str, str]]:
    """(where, code) for every ```python block of the READMEs."""
    found = []
    for readme in READMES:
        text = readme.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{readme.relative_to(ROOT).as_posix()}:{line}", match.group(1)))
    return found


def commands() -> list[tuple[str, str]]:
    """(where, command) for every ``$ ...`` line of the READMEs' console blocks that runs ``flowers``."""
    found = []
    for readme in READMES:
        text = readme.read_text(encoding="utf-8")
        for match in _CONSOLE.finditer(text):
            first = text.count("\n", 0, match.start()) + 2
            for offset, line in enumerate(match.group(1).splitlines()):
                if line.startswith("$ ") and re.search(r"(^|\| )flowers ", line[2:]):
                    found.append((f"{readme.relative_to(ROOT).as_posix()}:{first + offset}", line[2:]))
    return found


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("readme_*.py"):
        stale.unlink()
    for n, (where, code) in enumerate(snippets()):
        (out / f"readme_{n}.py").write_text(f"# {where}\n{code}", encoding="utf-8")
    print(f"{len(snippets())} README snippets written to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
