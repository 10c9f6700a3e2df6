"""flowers-serving unit tests. The hostile upstream (shared with the contract
tests) lives in the repository's tests/ folder; only loopback is ever used."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures"
sys.path.insert(0, str(REPO / "tests"))

from upstream import Upstream  # noqa: E402

# The handler reads these at import; short limits keep the slow cases quick.
os.environ.setdefault("FLOWERS_FETCH_READ_TIMEOUT", "2")
os.environ.setdefault("FLOWERS_FETCH_TOTAL_TIMEOUT", "4")
# A batch's time budget is a production guard; on a loaded test machine it would turn slow items into 504s.
os.environ.setdefault("FLOWERS_BATCH_TIME_BUDGET", "600")


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


@pytest.fixture(scope="session")
def flower_bytes() -> bytes:
    return (FIXTURES / "flowers" / "054-sunflower.jpg").read_bytes()
