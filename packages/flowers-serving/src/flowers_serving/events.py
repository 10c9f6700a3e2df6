"""Turn the Lambda events we accept into one typed :class:`Request`.

Accepted shapes:

* direct invoke (what the RIE forwards, and the reference's client sent):
  ``{"url": "...", "top_k": 5}`` or ``{"image": "<base64>", "top_k": 5}``;
* a warm-up ping: ``{"ping": true}``, ``{"warmup": true}`` or a scheduled
  EventBridge event (``"source": "aws.events"``);
* API Gateway REST (v1 proxy) and HTTP API (v2) events for ``POST /predict``
  whose body is that JSON object or the raw image (``isBase64Encoded``), with
  ``top_k`` then taken from the query string; and ``GET /health``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Literal

from flowers_serving.classifier import DEFAULT_TOP_K, MAX_TOP_K
from flowers_serving.errors import BadRequest, PayloadTooLarge

__all__ = ["Request", "parse_event"]

Kind = Literal["url", "image", "ping", "health"]


@dataclass(frozen=True)
class Request:
    kind: Kind
    proxy: Literal["v1", "v2"] | None  # None: direct invoke
    url: str | None = None
    image: bytes | None = None
    top_k: int = DEFAULT_TOP_K


def parse_event(event: object, *, max_image_bytes: int) -> Request:
    if not isinstance(event, dict):
        raise BadRequest("the event must be a JSON object")
    proxy = _proxy_version(event)
    if proxy is None:
        if (
            event.get("ping")
            or event.get("warmup")
            or event.get("source") in ("aws.events", "serverless-plugin-warmup")
        ):
            return Request(kind="ping", proxy=None)
        return _parse_body_object(event, proxy=None, max_image_bytes=max_image_bytes, query_top_k=None)

    method, path = _method_and_path(event, proxy)
    if method == "GET" and path.rstrip("/").endswith("/health"):
        return Request(kind="health", proxy=proxy)
    if method != "POST":
        raise BadRequest(f"{method} is not supported; send POST /predict")
    query = event.get("queryStringParameters") or {}
    query_top_k = query.get("top_k") if isinstance(query, dict) else None
    body = event.get("body")
    if body is None or body == "":
        raise BadRequest("the request has no body")
    if not isinstance(body, str):
        raise BadRequest("the proxy event body must be a string")
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    raw: bytes | str = body
    if event.get("isBase64Encoded"):
        raw = _b64decode(body, max_bytes=max_image_bytes * 2, what="body")
    if content_type == "application/json" or (not content_type and _looks_like_json(raw)):
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from exc
        return _parse_body_object(payload, proxy=proxy, max_image_bytes=max_image_bytes, query_top_k=query_top_k)
    image = raw if isinstance(raw, bytes) else raw.encode("latin-1", errors="replace")
    if len(image) > max_image_bytes:
        raise PayloadTooLarge(f"the image is {len(image):,} bytes; the limit is {max_image_bytes:,}")
    return Request(kind="image", proxy=proxy, image=image, top_k=_top_k(query_top_k))


def _proxy_version(event: dict[str, Any]) -> Literal["v1", "v2"] | None:
    context = event.get("requestContext")
    if not isinstance(context, dict):
        return None
    if event.get("version") == "2.0" and isinstance(context.get("http"), dict):
        return "v2"
    if "httpMethod" in event:
        return "v1"
    return None


def _method_and_path(event: dict[str, Any], proxy: Literal["v1", "v2"]) -> tuple[str, str]:
    if proxy == "v2":
        http = event["requestContext"]["http"]
        return str(http.get("method", "")).upper(), str(event.get("rawPath") or http.get("path") or "")
    return str(event.get("httpMethod", "")).upper(), str(event.get("path") or "")


def _looks_like_json(raw: bytes | str) -> bool:
    head = raw[:1]
    return head in ("{", b"{")


def _parse_body_object(
    payload: object, *, proxy: Literal["v1", "v2"] | None, max_image_bytes: int, query_top_k: object
) -> Request:
    if not isinstance(payload, dict):
        raise BadRequest("the request must be a JSON object with 'url' or 'image'")
    top_k = _top_k(payload.get("top_k", query_top_k))
    url, image = payload.get("url"), payload.get("image")
    if (url is None) == (image is None):
        raise BadRequest("send exactly one of 'url' or 'image'")
    if url is not None:
        if not isinstance(url, str) or not url:
            raise BadRequest("'url' must be a non-empty string")
        return Request(kind="url", proxy=proxy, url=url, top_k=top_k)
    if not isinstance(image, str) or not image:
        raise BadRequest("'image' must be a non-empty base64 string")
    return Request(
        kind="image", proxy=proxy, image=_b64decode(image, max_bytes=max_image_bytes, what="image"), top_k=top_k
    )


def _b64decode(text: str, *, max_bytes: int, what: str) -> bytes:
    # Check the size before decoding so an oversized payload costs no memory.
    if len(text) * 3 // 4 > max_bytes + 3:
        raise PayloadTooLarge(f"the {what} is larger than the {max_bytes:,}-byte limit")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"the {what} is not valid base64") from exc
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the {what} is {len(data):,} bytes; the limit is {max_bytes:,}")
    return data


def _top_k(value: object) -> int:
    if value is None:
        return DEFAULT_TOP_K
    if isinstance(value, bool):
        raise BadRequest(f"top_k must be an integer between 1 and {MAX_TOP_K}")
    if isinstance(value, str) and value.strip().isdecimal():
        value = int(value.strip())
    if not isinstance(value, int) or not 1 <= value <= MAX_TOP_K:
        raise BadRequest(f"top_k must be an integer between 1 and {MAX_TOP_K}")
    return value
