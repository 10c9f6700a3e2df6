"""The AWS Lambda adapter: event in, response out, nothing else.

The model, labels and HTTP session load once at import (the cold start);
each invocation parses the event into a :class:`~flowers_serving.events.Request`,
calls the pure core and turns the result, or a known error, into the reply:
``{statusCode, headers, body}`` for API Gateway proxy events, the JSON object
itself for direct invokes. No exception escapes: the RIE would turn one into
an HTTP 200 ``errorType`` payload and API Gateway into a bare 502.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any, Final

from flowers_serving import metrics, web
from flowers_serving.batch import ItemOutcome, run_batch
from flowers_serving.classifier import Classification, Classifier
from flowers_serving.errors import NotAFlower, ServingError
from flowers_serving.events import Request, decode_image, parse_event
from flowers_serving.fetch import Fetcher, FetchSettings
from flowers_serving.logs import configure_logging

__all__ = ["lambda_handler"]

_JSON_HEADERS: Final = {"Content-Type": "application/json"}

logger = configure_logging()

CLASSIFIER: Final = Classifier.from_env()
FETCHER: Final = Fetcher(FetchSettings.from_env())
#: Images sent inline: Lambda's own payload limit is 6 MB, so 10 MB is never
#: reached through it, but it bounds what a proxy body can make us decode.
MAX_IMAGE_BYTES: Final = int(os.environ.get("FLOWERS_MAX_IMAGE_BYTES", str(10 * 1024 * 1024)))
#: Seconds a batch may take at most (less if the Lambda context says less is left): the template's function
#: timeout is 25 s, API Gateway waits 29 s; the 20 s fetch deadline fits with 4 s to classify the last downloads.
BATCH_TIME_BUDGET_S: Final = float(os.environ.get("FLOWERS_BATCH_TIME_BUDGET", "24"))
_state = {"cold": True}


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    page = web.respond(event)  # GET / and /web/...: the web page's files
    if page is not None:
        return page
    started = time.perf_counter()
    request_id = str(getattr(context, "aws_request_id", "") or uuid.uuid4())
    cold, _state["cold"] = _state["cold"], False
    request: Request | None = None
    status = 500
    code: str | None = None
    items: list[ItemOutcome] = []
    body: dict[str, Any]
    try:
        request = parse_event(event, max_image_bytes=MAX_IMAGE_BYTES)
        if request.kind == "batch":
            items = _handle_batch(request, request_id, _time_left(context))
            body = {"results": [item.body for item in items]}
        else:
            body = _handle(request)
        status = 200
    except ServingError as exc:
        status, code = exc.status, exc.code
        body = {"error": {"code": exc.code, "message": exc.message, **exc.details}}
    except Exception:  # the last line of defence: log it, answer 500, keep serving
        logger.exception("unhandled error")
        code = "internal_error"
        body = {"error": {"code": code, "message": "internal error; see the function's logs"}}
    body["request_id"] = request_id
    proxy = request.proxy if request else _guess_proxy(event)
    logger.info(
        "request",
        extra={
            "request_id": request_id,
            "input_kind": request.kind if request else "invalid",
            "proxy": proxy or "direct",
            "status": status,
            "error_code": code,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "cold_start": cold,
            **_batch_log(items),
        },
    )
    timings = {**body.get("timings_ms", {}), "total_ms": (time.perf_counter() - started) * 1000}
    item_metrics = [metrics.Item(i.status, i.code, i.timings_ms, i.is_flower) for i in items]
    metrics.record(status, code, timings, body.get("is_flower"), items=item_metrics or None)
    if proxy is None:
        return body
    headers = {**_JSON_HEADERS, "X-Request-Id": request_id}
    return {"statusCode": status, "headers": headers, "body": json.dumps(body), "isBase64Encoded": False}


def _handle(request: Request) -> dict[str, Any]:
    info = CLASSIFIER.info
    if request.kind in ("ping", "health"):
        return {"status": "ok", "model": info.name, "model_version": info.version, "runtime": info.runtime}
    image = FETCHER.fetch(request.url) if request.kind == "url" and request.url else request.image
    assert image is not None  # parse_event guarantees one of url / image
    return _answer(image, request.top_k, request.reject)


def _answer(image: bytes, top_k: int, reject: bool) -> dict[str, Any]:
    """One image's result body, as a single request and every batch item get it."""
    body = _result_body(CLASSIFIER.classify(image, top_k))
    if reject and body.get("is_flower") is False:
        raise NotAFlower(
            "the photo does not show one of the 102 flower species this model knows",
            flower_score=body["flower_score"],
            predictions=body["predictions"],
        )
    return body


def _handle_batch(request: Request, request_id: str, time_left: float) -> list[ItemOutcome]:
    items = run_batch(
        request.items,
        answer=lambda image: _answer(image, request.top_k, request.reject),
        fetch=lambda url, seconds: FETCHER.fetch(url, within=seconds),
        decode=lambda text: decode_image(text, max_bytes=MAX_IMAGE_BYTES),
        fetch_seconds=FETCHER.settings.total_timeout,
        time_budget=time_left,
    )
    for item in items:
        item.body["request_id"] = request_id  # each entry reads like a single request's reply
    return items


def _time_left(context: Any) -> float:
    """Seconds this invocation has left: the Lambda context's (minus a second to reply), else the budget."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        try:
            return min(BATCH_TIME_BUDGET_S, max(0.0, float(remaining()) / 1000 - 1.0))
        except (TypeError, ValueError):
            pass
    return BATCH_TIME_BUDGET_S


def _batch_log(items: list[ItemOutcome]) -> dict[str, Any]:
    if not items:
        return {}
    codes = sorted({item.code for item in items if item.code})
    return {"images": len(items), "item_errors": sum(1 for item in items if item.code), "item_error_codes": codes}


def _result_body(result: Classification) -> dict[str, Any]:
    body: dict[str, Any] = {
        "predictions": [{"label": p.label, "class_id": p.class_id, "score": p.score} for p in result.predictions],
        "model": result.model.name,
        "model_version": result.model.version,
        "timings_ms": {k: round(v, 3) for k, v in result.timings_ms.items()},
    }
    if result.flower is not None:
        body["is_flower"] = result.flower.is_flower
        body["flower_score"] = result.flower.flower_score
    return body


def _guess_proxy(event: Any) -> str | None:
    """Which reply shape a malformed event should get: proxy events must get statusCode."""
    if isinstance(event, dict) and isinstance(event.get("requestContext"), dict):
        return "v2" if event.get("version") == "2.0" else "v1"
    return None
