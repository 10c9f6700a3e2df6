"""Shared fixtures for the cross-package contract tests: the hostile upstream
on loopback and the real local stack (RIE + API Gateway front), started once."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from contract.cases import STACK_ENV  # noqa: E402
from upstream import Upstream  # noqa: E402

# The in-process handler reads its settings at import: set them first.
os.environ.update(STACK_ENV)


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The real RIE behind both fronts (the built-in Python runtime where no RIE runs), on free ports."""
    from flowers_serving.local import LocalStack

    local = LocalStack(
        rie_port=0, gateway_port=0, workers=1, env=STACK_ENV, log_dir=tmp_path_factory.mktemp("stack-logs")
    )
    with local:
        yield local
