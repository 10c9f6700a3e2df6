"""The web page: its files, served by the Lambda function itself at ``GET /`` and ``GET /web/...``.

The page (``static/``: one HTML file, one stylesheet, one script module, an
icon and the four sample photos) is a client of ``POST /predict`` like any
other. Serving it from the same function keeps it on the API's own origin, so
it needs no CORS and its Content-Security-Policy can say ``'self'`` for
everything. :func:`respond` answers the proxy events for those paths and
returns ``None`` for everything else, which the handler then treats as usual.

Files are looked up in a table built from the package data, never by joining
a request path onto the file system, so no path can reach anything else.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

__all__ = ["CONTENT_SECURITY_POLICY", "paths", "respond"]

#: Nothing from elsewhere: scripts, styles and images from this origin only
#: (plus the preview's ``blob:`` URL), requests to this origin only.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".jpg": "image/jpeg",
}
#: The page itself is revalidated on every load (a 304 when unchanged), so a
#: deploy shows at once; the files it links carry ``?v=<content hash>`` and
#: are then cached for a year; other requests for them for five minutes.
_CACHE_PAGE: Final = "no-cache"
_CACHE_VERSIONED: Final = "public, max-age=31536000, immutable"
_CACHE_ASSET: Final = "public, max-age=300"
_ASSET_ROOT: Final = "/web/"


@dataclass(frozen=True)
class _File:
    body: bytes
    content_type: str
    etag: str  # a strong validator: the content hash, quoted

    @property
    def version(self) -> str:
        return self.etag.strip('"')


def _file(body: bytes, name: str) -> _File:
    suffix = name[name.rfind(".") :]
    return _File(body, _CONTENT_TYPES[suffix], f'"{hashlib.sha256(body).hexdigest()[:20]}"')


@cache
def _site() -> dict[str, _File]:
    """URL path -> file, read once from the package data (on the first page request, not at cold start)."""
    static = resources.files(__package__).joinpath("static")
    files: dict[str, _File] = {}

    def walk(folder: Any, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            elif entry.name[entry.name.rfind(".") :] in _CONTENT_TYPES and entry.name != "index.html":
                files[f"{_ASSET_ROOT}{prefix}{entry.name}"] = _file(entry.read_bytes(), entry.name)

    walk(static, "")
    page = static.joinpath("index.html").read_text("utf-8")
    for path, found in files.items():  # every link to a file of ours gets its version
        page = page.replace(f'"{path[1:]}"', f'"{path[1:]}?v={found.version}"')
    files["/"] = _file(page.encode(), "index.html")
    return files


def paths() -> frozenset[str]:
    """Every path :func:`respond` serves (the local gateway routes exactly these to the function)."""
    return frozenset(_site())


def respond(event: Any) -> dict[str, Any] | None:
    """The proxy reply for ``GET /`` or ``GET /web/...``; ``None`` when the event is not one of those."""
    if not isinstance(event, dict) or not isinstance(event.get("requestContext"), dict):
        return None  # a direct invoke
    method, path = _method_and_path(event)
    if method != "GET" or not (path == "/" or path.startswith(_ASSET_ROOT)):
        return None
    if path == "/" and (redirect := _trailing_slash_redirect(event)):
        return redirect
    found = _site().get(path)
    if found is None:
        # The API's error shape, like every other refusal (and no request text echoed back into a page).
        error = {"error": {"code": "bad_request", "message": "no such file of the web page"}}
        headers = {"Content-Type": "application/json", "Cache-Control": _CACHE_ASSET}
        return _reply(404, headers, json.dumps(error).encode())
    headers = {"Content-Type": found.content_type, "ETag": found.etag, "Cache-Control": _cache_control(event, found)}
    if found.etag in _header(event, "if-none-match").replace(" ", "").split(","):
        return _reply(304, headers, b"")
    return _reply(200, headers, found.body)


def _method_and_path(event: dict[str, Any]) -> tuple[str, str]:
    context = event["requestContext"]
    if event.get("version") == "2.0" and isinstance(context.get("http"), dict):
        return str(context["http"].get("method", "")).upper(), str(event.get("rawPath") or "")
    # REST API: the resource names our route even behind a custom domain's base path.
    params = event.get("pathParameters") or {}
    if event.get("resource") == "/web/{asset+}" and isinstance(params, dict) and "asset" in params:
        return str(event.get("httpMethod", "")).upper(), f"{_ASSET_ROOT}{params['asset']}"
    path = "/" if event.get("resource") == "/" else str(event.get("path") or "")
    return str(event.get("httpMethod", "")).upper(), path


def _trailing_slash_redirect(event: dict[str, Any]) -> dict[str, Any] | None:
    """``https://.../prod`` -> ``.../prod/``: the page's relative links only resolve under the slash."""
    full = event["requestContext"].get("path")
    if isinstance(full, str) and full.startswith("/") and not full.endswith("/"):
        return _reply(308, {"Location": f"{full}/", "Cache-Control": _CACHE_PAGE}, b"")
    return None


def _cache_control(event: dict[str, Any], found: _File) -> str:
    if found.content_type.startswith("text/html"):
        return _CACHE_PAGE
    query = event.get("queryStringParameters") or {}
    return _CACHE_VERSIONED if isinstance(query, dict) and query.get("v") == found.version else _CACHE_ASSET


def _header(event: dict[str, Any], name: str) -> str:
    headers = event.get("headers")
    for key, value in (headers if isinstance(headers, dict) else {}).items():
        if str(key).lower() == name:
            return str(value)
    return ""


def _reply(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    # Images go out base64-encoded; API Gateway turns them back into bytes because the
    # request's Accept header matches the REST API's binary media types (image/*).
    binary = headers.get("Content-Type", "").startswith("image/jpeg")
    return {
        "statusCode": status,
        "headers": {**headers, **_SECURITY_HEADERS},
        "body": base64.b64encode(body).decode() if binary else body.decode("utf-8"),
        "isBase64Encoded": binary,
    }
