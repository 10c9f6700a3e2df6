"""Delete what a CPU-only Lambda never loads from an installed ai-edge-litert: ``python trim.py SITE_PACKAGES``.

The WebGPU accelerator, the NPU vendors' compiler plugins and the apply_plugin
tool are about half of ai-edge-litert's 61 MB. The image build runs this after
``pip install``; ``nox -s container`` runs it on its venv before running the
handler under the RIE, which is what proves the trimmed install still works.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

UNUSED = (
    "ai_edge_litert/libLiteRtWebGpuAccelerator.so",
    "ai_edge_litert/vendors",
    "ai_edge_litert/tools/apply_plugin_main",
)


def trim(site_packages: Path) -> int:
    """Remove the unused files under ``site_packages``; returns the bytes freed."""
    freed = 0
    for relative in UNUSED:
        path = site_packages / relative
        if path.is_dir():
            freed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path)
        elif path.is_file():
            freed += path.stat().st_size
            path.unlink()
    return freed


if __name__ == "__main__":
    root = Path(sys.argv[1])
    if not (root / "ai_edge_litert").is_dir():
        sys.exit(f"trim: no ai_edge_litert under {root}")
    print(f"trim: freed {trim(root) / 1e6:.1f} MB under {root}")
