"""Opening the page in headless Chromium: the browser's settings and a recorder of every request.

Playwright drives the Chromium installed on the machine (Debian's ``chromium``,
or ``$FLOWERS_CHROMIUM``): no browser is downloaded.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import Any

CHROMIUM = os.environ.get("FLOWERS_CHROMIUM") or next(
    filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"))), None
)
# Quiet, self-contained Chromium: nothing of its own goes to the network either.
# (Playwright adds --headless and --no-sandbox, and gives each launch a fresh profile.)
LAUNCH_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}
#: Only a guard against a hang; nothing is timed (the machine is shared and slow).
WAIT_MS = 90_000


@dataclass
class Visit:
    """One page of the site in a fresh browser context, with everything it requested."""

    page: Any
    origin: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # uncaught exceptions and CSP violations

    def foreign(self) -> list[str]:
        return [u for u in self.requests if not u.startswith((f"{self.origin}/", "blob:", "data:"))]


def open_page(browser: Any, origin: str, *, phone: bool = False) -> Visit:
    options: dict[str, Any] = {"viewport": PHONE if phone else DESKTOP, "service_workers": "block"}
    if phone:
        options |= {"is_mobile": True, "has_touch": True, "device_scale_factor": 1}
    context = browser.new_context(**options)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    visit = Visit(page, origin)
    context.on("request", lambda request: visit.requests.append(request.url))
    page.on("pageerror", lambda error: visit.errors.append(f"uncaught: {error}"))
    page.on(
        "console",
        lambda message: (
            visit.errors.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    response = page.goto(f"{origin}/")
    assert response is not None
    assert response.status == 200, response
    return visit
