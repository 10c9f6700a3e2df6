"""Turn the Lambda events we accept into one typed :class:`Request`, strictly.

Accepted shapes:

* direct invoke (what the RIE forwards, and the reference's client sent):
  ``{"url": "...", "top_k": 5}`` or ``{"image": "<base64>", "top_k": 5}``;
* a warm-up ping: ``{"ping": true}``, ``{"warmup": true}`` or a scheduled
  EventBridge event (``"source": "aws.events"``);
* a batch: ``{"images": [{"url": "..."} | {"image": "<base64>"}, ...], "top_k": 5}``
  with 1 to :data:`MAX_BATCH_IMAGES` items (the options apply to every item);
* API Gateway REST (v1 proxy) and HTTP API (v2) events for ``POST /predict``
  whose body is one of those JSON objects or the raw image (``isBase64Encoded``), with
  ``top_k`` then taken from the query string; and ``GET /health``.

Every field is type-checked before use (a list where an object belongs is a
400, never a 500), ``top_k`` is a JSON integer or an ASCII-digit query value
in 1-102, JSON is at most :data:`MAX_JSON_DEPTH` levels deep, and sizes are
checked against the limits of the front door the request came through before
anything is decoded: Lambda's 6,291,456-byte invoke payload for a direct
invoke, API Gateway's 10 MB body for a proxy event (for a batch: all its
items together, since the limit is the request's).

A batch's shape is checked whole (a list of 1-16 objects, each with exactly
one of ``url`` / ``image``, strings): a wrong shape is one 400 naming the
field (``images[3].url``). What is in an item (base64 that does not decode,
an image over the size cap, a URL we refuse) is that item's own error.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Final, Literal

from flowers_serving.classifier import DEFAULT_TOP_K, MAX_TOP_K
from flowers_serving.errors import BadRequest, PayloadTooLarge

__all__ = [
    "MAX_BATCH_IMAGES",
    "MAX_DIRECT_INVOKE_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_PROXY_BODY_BYTES",
    "BatchItem",
    "Request",
    "decode_image",
    "parse_event",
]

Kind = Literal["url", "image", "batch", "ping", "health"]

#: Lambda's limit on a synchronous invoke's request payload.
MAX_DIRECT_INVOKE_BYTES: Final = 6_291_456
#: API Gateway's limit on a request body (REST and HTTP APIs).
MAX_PROXY_BODY_BYTES: Final = 10 * 1024 * 1024
#: Our requests are two levels deep; anything far deeper is an attack on the parser.
MAX_JSON_DEPTH: Final = 32
#: The most images one request may carry: 16 photos of a few hundred KB stay
#: well inside Lambda's 6 MB, and 16 URL downloads inside one fetch deadline.
MAX_BATCH_IMAGES: Final = 16
_TOP_K_ERROR: Final = f"top_k must be an integer between 1 and {MAX_TOP_K}"


@dataclass(frozen=True)
class BatchItem:
    """One item of a batch, as sent: a URL, or the image still base64-encoded (decoded when its turn comes)."""

    url: str | None = None
    image_base64: str | None = None


@dataclass(frozen=True)
class Request:
    kind: Kind
    proxy: Literal["v1", "v2"] | None  # None: direct invoke
    url: str | None = None
    image: bytes | None = None
    top_k: int = DEFAULT_TOP_K
    reject: bool = False  # a photo that is not one of our species becomes 422 not_a_flower
    items: tuple[BatchItem, ...] = ()  # kind "batch" only


def parse_event(event: object, *, max_image_bytes: int) -> Request:
    if not isinstance(event, dict):
        raise BadRequest("the event must be a JSON object")
    _check_depth(event, "the event")
    proxy = _proxy_version(event)
    if proxy is None:
        if event.get("ping") is True or event.get("warmup") is True or event.get("source") in _WARMUP_SOURCES:
            return Request(kind="ping", proxy=None)
        return _parse_body_object(
            event,
            proxy=None,
            max_image_bytes=max_image_bytes,
            query_top_k=None,
            query_reject=None,
            payload_limit=MAX_DIRECT_INVOKE_BYTES,
        )

    method, path = _method_and_path(event, proxy)
    if method == "GET" and path.rstrip("/").endswith("/health"):
        return Request(kind="health", proxy=proxy)
    if method != "POST":
        raise BadRequest(f"{method or 'this method'} is not supported; send POST /predict")
    query = _string_map(event.get("queryStringParameters"), "queryStringParameters")
    query_top_k, query_reject = query.get("top_k"), query.get("reject")
    headers = {k.lower(): v for k, v in _string_map(event.get("headers"), "headers").items()}
    body = event.get("body")
    if body is None or body == "":
        raise BadRequest("the request has no body")
    if not isinstance(body, str):
        raise BadRequest("the proxy event 'body' must be a string")
    is_base64 = event.get("isBase64Encoded", False)
    if not isinstance(is_base64, bool):
        raise BadRequest("'isBase64Encoded' must be a boolean")
    if (len(body) * 3 // 4 if is_base64 else len(body)) > MAX_PROXY_BODY_BYTES:
        raise PayloadTooLarge(f"the request body is over API Gateway's {MAX_PROXY_BODY_BYTES:,}-byte limit")
    content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    raw: bytes | str = body
    if is_base64:
        raw = _b64decode(body, max_bytes=MAX_PROXY_BODY_BYTES, what="body")
    if content_type == "application/json" or (not content_type and raw[:1] in ("{", b"{")):
        payload = _loads(raw)
        return _parse_body_object(
            payload,
            proxy=proxy,
            max_image_bytes=max_image_bytes,
            query_top_k=query_top_k,
            query_reject=query_reject,
            payload_limit=None,
        )
    image = raw if isinstance(raw, bytes) else raw.encode("latin-1", errors="replace")
    if len(image) > max_image_bytes:
        raise PayloadTooLarge(f"the image is {len(image):,} bytes; the limit is {max_image_bytes:,}")
    return Request(
        kind="image", proxy=proxy, image=image, top_k=_query_top_k(query_top_k), reject=_query_reject(query_reject)
    )


_WARMUP_SOURCES: Final = ("aws.events", "serverless-plugin-warmup")


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
        method, path = http.get("method"), event.get("rawPath") or http.get("path") or ""
    else:
        method, path = event.get("httpMethod"), event.get("path") or ""
    if not isinstance(method, str) or not isinstance(path, str):
        raise BadRequest("the proxy event's method and path must be strings")
    return method.upper(), path


def _string_map(value: object, name: str) -> dict[str, str]:
    """A proxy event's headers or query parameters: absent, or an object of strings."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise BadRequest(f"'{name}' must be an object of strings")
    return value


def _loads(raw: bytes | str) -> object:
    try:
        payload = json.loads(raw, object_pairs_hook=_unique_keys)
    except RecursionError as exc:
        raise BadRequest(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    _check_depth(payload, "the JSON body")
    return payload


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object that names a key twice is refused: parsers disagree on which one wins."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise BadRequest("the JSON body repeats a key in one object")
    return obj


def _check_depth(value: object, what: str) -> None:
    """Refuse containers nested deeper than :data:`MAX_JSON_DEPTH` (iteratively: no recursion to exhaust)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise BadRequest(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list | tuple))


def _parse_body_object(
    payload: object,
    *,
    proxy: Literal["v1", "v2"] | None,
    max_image_bytes: int,
    query_top_k: str | None,
    query_reject: str | None,
    payload_limit: int | None,
) -> Request:
    if not isinstance(payload, dict):
        raise BadRequest("the request must be a JSON object with 'url', 'image' or 'images'")
    top_k = _json_top_k(payload["top_k"]) if "top_k" in payload else _query_top_k(query_top_k)
    reject = payload["reject"] if "reject" in payload else _query_reject(query_reject)
    if not isinstance(reject, bool):
        raise BadRequest("'reject' must be a boolean")
    if "images" in payload:
        if "url" in payload or "image" in payload:
            raise BadRequest("send 'images' (a batch) or one of 'url' / 'image', not both")
        items = _batch_items(payload["images"], payload_limit)
        return Request(kind="batch", proxy=proxy, top_k=top_k, reject=reject, items=items)
    url, image = payload.get("url"), payload.get("image")
    if (url is None) == (image is None):
        raise BadRequest("send exactly one of 'url' or 'image'")
    if url is not None:
        if not isinstance(url, str) or not url:
            raise BadRequest("'url' must be a non-empty string")
        return Request(kind="url", proxy=proxy, url=url, top_k=top_k, reject=reject)
    if not isinstance(image, str) or not image:
        raise BadRequest("'image' must be a non-empty base64 string")
    if payload_limit is not None and len(image) > payload_limit:
        raise PayloadTooLarge(
            f"the request payload is over {len(image):,} bytes; a direct invoke carries at most "
            f"{payload_limit:,} bytes (Lambda's limit)"
        )
    return Request(
        kind="image",
        proxy=proxy,
        image=_b64decode(image, max_bytes=max_image_bytes, what="image"),
        top_k=top_k,
        reject=reject,
    )


def _batch_items(value: object, payload_limit: int | None) -> tuple[BatchItem, ...]:
    """The batch's shape, all of it checked before any item runs: one 400 naming the first wrong field."""
    if not isinstance(value, list):
        raise BadRequest("'images' must be a list of {'url': ...} or {'image': ...} objects")
    if not 1 <= len(value) <= MAX_BATCH_IMAGES:
        raise BadRequest(f"'images' must hold 1 to {MAX_BATCH_IMAGES} items; it holds {len(value)}")
    items: list[BatchItem] = []
    inline = 0
    for i, item in enumerate(value):
        field = f"images[{i}]"
        if not isinstance(item, dict):
            raise BadRequest(f"'{field}' must be an object with 'url' or 'image'")
        unknown = sorted(str(k) for k in item if k not in ("url", "image"))
        if unknown:
            # Options (top_k, reject) are the batch's, not an item's: say so rather than ignore them.
            raise BadRequest(f"'{field}' may only hold 'url' or 'image'; '{unknown[0]}' belongs beside 'images'")
        url, image = item.get("url"), item.get("image")
        if (url is None) == (image is None):
            raise BadRequest(f"'{field}': send exactly one of 'url' or 'image'")
        if url is not None:
            if not isinstance(url, str) or not url:
                raise BadRequest(f"'{field}.url' must be a non-empty string")
            items.append(BatchItem(url=url))
            continue
        if not isinstance(image, str) or not image:
            raise BadRequest(f"'{field}.image' must be a non-empty base64 string")
        inline += len(image)
        items.append(BatchItem(image_base64=image))
    if payload_limit is not None and inline > payload_limit:
        raise PayloadTooLarge(
            f"the batch's images are {inline:,} bytes of base64 together; a direct invoke carries at most "
            f"{payload_limit:,} bytes (Lambda's limit)"
        )
    return tuple(items)


def decode_image(text: str, *, max_bytes: int) -> bytes:
    """A batch item's base64 image, with the same checks as a single request's (400 / 413)."""
    return _b64decode(text, max_bytes=max_bytes, what="image")


def _query_reject(value: str | None) -> bool:
    """``?reject=true`` / ``false`` (also 1 / 0); anything else is a 400 naming the field."""
    if value is None:
        return False
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise BadRequest("reject must be true or false")


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


def _json_top_k(value: object) -> int:
    """``top_k`` in a JSON body: an integer (not a boolean, not 5.0, not "5") in 1-102."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOP_K:
        raise BadRequest(_TOP_K_ERROR)
    return value


def _query_top_k(value: str | None) -> int:
    """``top_k`` from a query string: ASCII digits only ("²" and "٥" are digits to ``str.isdigit``)."""
    if value is None:
        return DEFAULT_TOP_K
    if not (0 < len(value) <= 3 and value.isascii() and value.isdigit()):
        raise BadRequest(_TOP_K_ERROR)
    return _json_top_k(int(value))
