"""The raw HTTP reply behind every result and every error the service sent."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["RawResponse"]


@dataclass(frozen=True)
class RawResponse:
    """What came back on the wire, for callers who need more than the parsed model.

    ``headers`` is case-insensitive. ``content`` is at most
    :data:`~flowers_client._config.MAX_REPLY_BYTES` long (the client refuses
    larger replies). ``elapsed_ms`` runs from sending to the last byte.
    """

    status_code: int
    headers: Mapping[str, str]
    content: bytes
    url: str
    elapsed_ms: float = field(default=0.0, compare=False)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> object:
        """The body parsed as JSON; raises ``ValueError`` if it is not JSON."""
        return json.loads(self.content)

    def __repr__(self) -> str:
        return f"<RawResponse [{self.status_code}] {len(self.content)} bytes from {self.url}>"
