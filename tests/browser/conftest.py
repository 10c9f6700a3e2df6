"""A real browser against the real local stack: headless Chromium driven by Playwright.

The stack (the real RIE and the gateway front) and the loopback image host
come from ``tests/conftest.py``. Every page records every request it makes; a
test fails if one went to any origin but the stack's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browsing import CHROMIUM, LAUNCH_ARGS, Visit, open_page


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no Chromium or Chrome installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, chromium_sandbox=False, args=LAUNCH_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def visit(browser: Any, stack: Any) -> Iterator[Visit]:
    current = open_page(browser, stack.gateway_url)
    yield current
    current.page.context.close()
    assert current.requests, "the request recorder saw nothing"
    assert not current.foreign(), f"requests to other origins: {current.foreign()}"
    assert not current.errors, current.errors


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: $FLOWERS_SCREENSHOTS (e.g. docs/screenshots) or a temporary folder."""
    folder = Path(os.environ.get("FLOWERS_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
