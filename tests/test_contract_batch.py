"""Batch requests through every serving path: the contract cases packed sixteen to a request.

Each item of a batch must get what the same case gets alone (status, code, top-1), in input order,
with the batch itself answered 200; batches of the wrong shape are one 400; payloads over the
front door's limit are 413. Paths: the handler in-process (direct, REST v1, HTTP API v2), the real
RIE, and the gateway front (tests/test_local_stack.py runs a batch through the built-in Python
runtime too); then the clients with ``batch_size``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
import requests
from contract.cases import CASES, FLOWERS, Case, b64, schema
from test_contract import check

import flowers_client
from flowers_serving.local.gateway import build_proxy_event

SCHEMA = schema()
MAX_ITEMS = SCHEMA["$defs"]["batch_request"]["properties"]["images"]["maxItems"]


def _validate(kind: str, body: object) -> None:
    jsonschema.validate(body, {"$ref": f"#/$defs/{kind}", "$defs": SCHEMA["$defs"]})


def _item_of(case: Case, url: Callable[[str], str]) -> dict[str, Any] | None:
    """The case as a batch item, if it is one: exactly one of url / image, and no option of its own that fails."""
    request = case.build(url)
    top_k = request.get("top_k", 5)
    if set(request) - {"top_k"} not in ({"url"}, {"image"}) or type(top_k) is not int or not 1 <= top_k <= 102:
        return None
    item = {k: v for k, v in request.items() if k in ("url", "image")}
    return item if all(isinstance(v, str) for v in item.values()) else None


ITEM_CASES = [c for c in CASES if _item_of(c, lambda p: "http://127.0.0.1:9" + p) is not None]
QUICK = [c for c in ITEM_CASES if "slow" not in c.tags]
#: Sixteen at a time, and the slow URLs (every one would time out alone) together with two good photos.
BATCHES: list[list[Case]] = [QUICK[i : i + MAX_ITEMS] for i in range(0, len(QUICK), MAX_ITEMS)] + [
    [c for c in ITEM_CASES if "slow" in c.tags] + [ITEM_CASES[0], ITEM_CASES[1]]
]
BATCH_IDS = [f"batch{i}-{len(b)}-items" for i, b in enumerate(BATCHES)]


def batch_request(cases: list[Case], upstream: Any) -> dict[str, Any]:
    return {"images": [_item_of(c, upstream.url) for c in cases], "top_k": 5}


def check_batch(cases: list[Case], status: int, body: dict[str, Any]) -> None:
    assert status == 200, json.dumps(body)[:300]
    _validate("batch_reply", body)
    results = body["results"]
    assert len(results) == len(cases)
    for case, entry in zip(cases, results, strict=True):
        check(case, entry["status"], entry)
        if case.code is None:
            assert len(entry["predictions"]) == 5


def test_the_batches_cover_the_cases() -> None:
    assert {c.name for batch in BATCHES for c in batch} == {c.name for c in ITEM_CASES}
    assert all(1 <= len(b) <= MAX_ITEMS for b in BATCHES)
    assert any(c.code is None for c in ITEM_CASES)
    assert any(c.code for c in ITEM_CASES)


@pytest.fixture(scope="module")
def handler() -> Any:
    from flowers_serving.handler import lambda_handler

    return lambda_handler


@pytest.mark.parametrize("cases", BATCHES, ids=BATCH_IDS)
def test_handler_direct_invoke(cases: list[Case], handler: Any, upstream: Any) -> None:
    body = handler(batch_request(cases, upstream), None)
    check_batch(cases, 200 if "results" in body else 0, body)


@pytest.mark.parametrize("cases", BATCHES[:1], ids=BATCH_IDS[:1])
def test_handler_rest_api_event(cases: list[Case], handler: Any, upstream: Any) -> None:
    payload = json.dumps(batch_request(cases, upstream)).encode()
    event = build_proxy_event("POST", "/predict", {"Content-Type": "application/json"}, payload, request_id="r1")
    reply = handler(event, None)
    check_batch(cases, reply["statusCode"], json.loads(reply["body"]))


@pytest.mark.parametrize("cases", BATCHES[:1], ids=BATCH_IDS[:1])
def test_handler_http_api_event(cases: list[Case], handler: Any, upstream: Any) -> None:
    event = {
        "version": "2.0",
        "routeKey": "POST /predict",
        "rawPath": "/predict",
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": "/predict"}, "requestId": "r2"},
        "body": base64.b64encode(json.dumps(batch_request(cases, upstream)).encode()).decode(),
        "isBase64Encoded": True,
    }
    reply = handler(event, None)
    check_batch(cases, reply["statusCode"], json.loads(reply["body"]))


@pytest.mark.parametrize("cases", BATCHES, ids=BATCH_IDS)
def test_rie(cases: list[Case], stack: Any, upstream: Any) -> None:
    response = requests.post(stack.rie_url, json=batch_request(cases, upstream), timeout=60)
    assert response.status_code == 200
    body = response.json()
    check_batch(cases, 200 if "results" in body else 0, body)


@pytest.mark.parametrize("cases", BATCHES, ids=BATCH_IDS)
def test_gateway(cases: list[Case], stack: Any, upstream: Any) -> None:
    response = requests.post(f"{stack.gateway_url}/predict", json=batch_request(cases, upstream), timeout=60)
    assert response.headers["Content-Type"] == "application/json"
    check_batch(cases, response.status_code, response.json())


# --- the batch itself is wrong ------------------------------------------------------------------------------------

GOOD_ITEM = {"image": b64(FLOWERS[0])}
BAD_BATCHES = {
    "empty": ({"images": []}, "images"),
    "seventeen": ({"images": [GOOD_ITEM] * (MAX_ITEMS + 1)}, "images"),
    "not-a-list": ({"images": GOOD_ITEM}, "images"),
    "item-a-string": ({"images": [GOOD_ITEM, "https://example.com/a.jpg"]}, "images[1]"),
    "item-empty": ({"images": [{}]}, "images[0]"),
    "item-both": ({"images": [{"url": "https://example.com/a.jpg", **GOOD_ITEM}]}, "images[0]"),
    "item-url-not-a-string": ({"images": [GOOD_ITEM, GOOD_ITEM, {"url": 42}]}, "images[2].url"),
    "item-image-not-a-string": ({"images": [{"image": 42}]}, "images[0].image"),
    "item-own-option": ({"images": [{**GOOD_ITEM, "top_k": 3}]}, "images[0]"),
    "batch-and-single": ({"images": [GOOD_ITEM], **GOOD_ITEM}, "images"),
    "bad-top-k": ({"images": [GOOD_ITEM], "top_k": 0}, "top_k"),
}


def check_refused(status: int, body: dict[str, Any], field: str) -> None:
    assert status == 400, body
    _validate("error", body)
    assert body["error"]["code"] == "bad_request"
    assert field in body["error"]["message"]


@pytest.mark.parametrize("name", BAD_BATCHES)
def test_a_batch_of_the_wrong_shape_is_a_400_on_every_path(name: str, handler: Any, stack: Any) -> None:
    request, field = BAD_BATCHES[name]
    with pytest.raises(jsonschema.ValidationError):
        _validate("batch_request", request)  # the schema says no too
    body = handler(request, None)
    check_refused(400, body, field)
    body = requests.post(stack.rie_url, json=request, timeout=30).json()
    check_refused(400, body, field)
    response = requests.post(f"{stack.gateway_url}/predict", json=request, timeout=30)
    check_refused(response.status_code, response.json(), field)


def test_the_schema_accepts_what_the_service_accepts(upstream: Any) -> None:
    _validate("batch_request", batch_request(BATCHES[0], upstream))
    _validate("batch_request", {"images": [{"url": "https://example.com/a.jpg"}], "reject": True, "top_k": 102})


# --- payload limits: per request, 413 ---------------------------------------------------------------------------


def _padded_batch(total_bytes: int) -> dict[str, Any]:
    """A batch of valid-looking items whose JSON is about ``total_bytes`` (base64 of zeros: undecodable images)."""
    per_item = total_bytes // MAX_ITEMS
    return {"images": [{"image": "A" * (per_item - per_item % 4)} for _ in range(MAX_ITEMS)]}


def test_a_direct_batch_over_lambdas_6_mb_is_413(stack: Any, handler: Any) -> None:
    request = _padded_batch(6_291_456 + 64 * 1024)
    response = requests.post(stack.rie_url, json=request, timeout=60)
    assert response.status_code == 413  # the invoke front refuses it, as Lambda's Invoke API does
    assert response.json()["error"]["code"] == "payload_too_large"
    assert handler(request, None)["error"]["code"] == "payload_too_large"  # and so does the handler itself


def test_a_gateway_batch_over_6_mb_of_event_is_413(stack: Any) -> None:
    response = requests.post(f"{stack.gateway_url}/predict", json=_padded_batch(7 * 1024 * 1024), timeout=60)
    assert response.status_code == 413
    _validate("error", response.json())
    assert "6 MB" in response.json()["error"]["message"]


def test_a_gateway_batch_over_10_mb_is_413(stack: Any) -> None:
    response = requests.post(f"{stack.gateway_url}/predict", json=_padded_batch(10 * 1024 * 1024 + 4096), timeout=60)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


# --- the clients ------------------------------------------------------------------------------------------------


def _client_cases(upstream: Any) -> tuple[list[Case], list[Any]]:
    cases = [c for c in ITEM_CASES if "slow" not in c.tags and "raw" not in c.tags]
    inputs = [c.image if c.image is not None else c.build(upstream.url)["url"] for c in cases]
    return cases, inputs


def _check_items(cases: list[Case], items: list[flowers_client.BatchItem]) -> None:
    assert [item.index for item in items] == list(range(len(cases)))
    for case, item in zip(cases, items, strict=True):
        if case.code is None:
            assert item.ok, (case, item.error)
            assert len(item.result.predictions) == 5
            assert item.result.request_id
            if case.class_id is not None:
                assert item.result.best.class_id == case.class_id
        else:
            assert not item.ok, case
            assert isinstance(item.error, flowers_client.APIStatusError), item.error
            assert (item.error.code, item.error.status_code) == (case.code, case.status), case
            assert item.error.request_id


def test_client_batches_through_the_gateway(stack: Any, upstream: Any) -> None:
    cases, inputs = _client_cases(upstream)
    sent: list[bytes] = []
    import httpx

    spy = httpx.Client(event_hooks={"request": [lambda request: sent.append(request.read())]})
    with flowers_client.FlowersClient(f"{stack.gateway_url}/predict", http_client=spy, max_retries=0) as client:
        items = client.classify_many(inputs, top_k=5, batch_size=MAX_ITEMS)
    spy.close()
    _check_items(cases, items)
    assert len(sent) == -(-len(inputs) // MAX_ITEMS)  # one request per sixteen inputs
    for payload in sent:
        _validate("batch_request", json.loads(payload))


def test_async_client_batches_through_the_gateway(stack: Any, upstream: Any) -> None:
    cases, inputs = _client_cases(upstream)

    async def go() -> list[flowers_client.BatchItem]:
        async with flowers_client.AsyncFlowersClient(f"{stack.gateway_url}/predict", max_retries=0) as client:
            return [item async for item in client.iter_classify(inputs, top_k=5, batch_size=5, concurrency=2)]

    items = sorted(asyncio.run(go()), key=lambda item: item.index)
    _check_items(cases, items)


def test_client_sends_one_image_per_invoke_to_the_rie(stack: Any, upstream: Any) -> None:
    """batch_size is forced to 1 on the RIE transport (one invoke at a time): still every item answered."""
    import httpx

    cases, inputs = _client_cases(upstream)
    cases, inputs = cases[:6], inputs[:6]
    sent: list[bytes] = []
    spy = httpx.Client(event_hooks={"request": [lambda request: sent.append(request.read())]})
    with flowers_client.FlowersClient(stack.rie_url, http_client=spy, max_retries=0) as client:
        items = client.classify_many(inputs, top_k=5, batch_size=MAX_ITEMS)
    spy.close()
    _check_items(cases, items)
    assert len(sent) == len(inputs)
    assert all("images" not in json.loads(payload) for payload in sent)


@pytest.mark.parametrize("transport", ["gateway", "rie"])
def test_cli_batch_size(transport: str, stack: Any, upstream: Any) -> None:
    """`flowers classify --batch-size 16`: lines in input order, failed items on their own lines (exit 3)."""
    from test_contract_client import endpoint_of, flowers

    inputs = [str(p) for p in FLOWERS * 5] + [upstream.url("/missing"), upstream.url("/flower.jpg")]
    process = flowers("classify", *inputs, "--endpoint", endpoint_of(stack, transport), "--json", "--batch-size", "16")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 3, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["input"] for line in lines] == inputs
    assert [line["ok"] for line in lines] == [True] * 20 + [False, True]
    assert lines[20]["error"]["code"] == "upstream_error"
    assert "Traceback" not in err
