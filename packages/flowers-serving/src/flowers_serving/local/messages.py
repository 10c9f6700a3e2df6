"""What the local fronts pass around: a request read whole, a response, and the JSON error shape."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

__all__ = ["Request", "Response", "json_error"]


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query, as sent
    headers: list[tuple[str, str]]  # names as sent, in order
    body: bytes
    client: tuple[str, int]

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in reversed(self.headers) if k.lower() == name), None)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """The error shape the handler uses (and the SAM template's gateway responses)."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return Response(status, body, {"Content-Type": "application/json", **(headers or {})})
