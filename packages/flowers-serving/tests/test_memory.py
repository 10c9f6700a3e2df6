"""Peak RSS of the real handler, model loaded, for every kind of hostile image: at most 512 MB.

The images come from ``tests/hostile.py`` (a few KB to a few hundred KB each,
made at test time). ``rss_probe.py`` runs the handler in a subprocess and
sends them one after the other, as a warm function would get them, reading
the kernel's peak-RSS mark (reset before each request) after each one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "tests"))
from hostile import CLASSES

LIMIT_MB = 512
PROBE = Path(__file__).with_name("rss_probe.py")

pytestmark = [
    pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc"),
    # Decoding does not depend on the inference runtime: one run (LiteRT, what ships) is enough for CI time.
    pytest.mark.skipif(os.environ.get("FLOWERS_RUNTIME") == "tflite-runtime", reason="checked with LiteRT"),
    # Making the images and decoding ~40 of them at up to 40 megapixels: a minute or two, more on a busy machine.
    pytest.mark.timeout(1200),
]


@pytest.fixture(scope="module")
def peaks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    folder = tmp_path_factory.mktemp("hostile")
    paths = []
    for case in CLASSES:
        path = folder / case.name
        path.write_bytes(case.make())
        paths.append(str(path))
    result = subprocess.run(
        [sys.executable, str(PROBE), *paths], capture_output=True, text=True, timeout=600, check=True
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    # The handler's own output (stderr here) must be JSON lines too, and short.
    for line in result.stderr.splitlines():
        json.loads(line)
    assert len(result.stderr) < 64 * 1024 * len(CLASSES)
    return {str(line["file"]): line for line in lines if "file" in line}


@pytest.mark.parametrize("case", CLASSES, ids=str)
def test_hostile_image_fits_in_512_mb(case: object, peaks: dict[str, dict[str, object]]) -> None:
    line = peaks[str(case)]
    assert line["code"] == case.code, line
    peak = line["peak_rss_mb"]
    assert isinstance(peak, float)
    assert peak <= LIMIT_MB, line
