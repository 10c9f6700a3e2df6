"""The same contract cases through every serving path, and through the client.

Paths: the handler called in-process (direct, REST v1 and HTTP API v2 events),
the real Lambda RIE over HTTP, and the local API Gateway front; then the
client over real loopback HTTP to the last two.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import jsonschema
import pytest
import requests
from contract.cases import CASES, Case, schema, status_of

import flowers_client
from flowers_serving.local.gateway import build_proxy_event

SCHEMA = schema()


def _validate(kind: str, body: object) -> None:
    jsonschema.validate(body, {"$ref": f"#/$defs/{kind}", "$defs": SCHEMA["$defs"]})


def check(case: Case, status: int, body: dict[str, Any]) -> None:
    """What every path must return for ``case``: the status, the code, a valid body."""
    assert status == case.status, f"{case}: status {status}, body {json.dumps(body)[:300]}"
    if case.code is None:
        _validate("result", body)
        scores = [p["score"] for p in body["predictions"]]
        assert scores == sorted(scores, reverse=True)
        assert 0.0 < sum(scores) <= 1.0 + 1e-6
        if case.class_id is not None:
            assert body["predictions"][0]["class_id"] == case.class_id, body["predictions"][:3]
        # The shipped model always answers whether the photo shows one of our species.
        assert (body["flower_score"] >= 0.5) is body["is_flower"]
        if case.is_flower is not None:
            assert body["is_flower"] is case.is_flower, f"{case}: flower_score {body['flower_score']}"
    else:
        _validate("error", body)
        assert body["error"]["code"] == case.code, body
        assert status_of(case.code) == case.status
        if case.code == "not_a_flower":
            assert body["error"]["flower_score"] < 0.5
            assert body["error"]["predictions"], "the top guesses travel with the rejection"


def _direct_status(body: dict[str, Any]) -> int:
    """Direct invokes carry no HTTP status: the error code says it, by the schema's table."""
    return status_of(body["error"]["code"]) if "error" in body else 200


@pytest.fixture(scope="module")
def handler() -> Any:
    from flowers_serving.handler import lambda_handler

    return lambda_handler


@pytest.mark.parametrize("case", CASES, ids=str)
def test_handler_direct_invoke(case: Case, handler: Any, upstream: Any) -> None:
    body = handler(case.build(upstream.url), None)
    check(case, _direct_status(body), body)


@pytest.mark.parametrize("case", [c for c in CASES if "slow" not in c.tags], ids=str)
def test_handler_rest_api_event(case: Case, handler: Any, upstream: Any) -> None:
    payload = json.dumps(case.build(upstream.url)).encode()
    event = build_proxy_event("POST", "/predict", {"Content-Type": "application/json"}, payload, request_id="r1")
    reply = handler(event, None)
    assert reply["headers"]["Content-Type"] == "application/json"
    check(case, reply["statusCode"], json.loads(reply["body"]))


@pytest.mark.parametrize("case", [c for c in CASES if c.image is not None], ids=str)
def test_handler_http_api_binary_body(case: Case, handler: Any) -> None:
    assert case.image is not None
    event = {
        "version": "2.0",
        "routeKey": "POST /predict",
        "rawPath": "/predict",
        # A binary body carries no JSON options: they travel in the query string.
        "rawQueryString": "top_k=5&reject=true" if case.reject else "top_k=5",
        "queryStringParameters": {"top_k": "5", "reject": "true"} if case.reject else {"top_k": "5"},
        "headers": {"content-type": "application/octet-stream"},
        "requestContext": {"http": {"method": "POST", "path": "/predict"}, "requestId": "r2"},
        "body": base64.b64encode(case.image.read_bytes()).decode(),
        "isBase64Encoded": True,
    }
    reply = handler(event, None)
    check(case, reply["statusCode"], json.loads(reply["body"]))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_rie(case: Case, stack: Any, upstream: Any) -> None:
    response = requests.post(stack.rie_url, json=case.build(upstream.url), timeout=30)
    assert response.status_code == 200  # the RIE always answers 200; errors live in the body
    body = response.json()
    check(case, _direct_status(body), body)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_gateway(case: Case, stack: Any, upstream: Any) -> None:
    response = requests.post(f"{stack.gateway_url}/predict", json=case.build(upstream.url), timeout=30)
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers.get("x-amzn-RequestId")
    check(case, response.status_code, response.json())


def _client_input(case: Case, upstream: Any) -> Any:
    request = case.build(upstream.url)
    return case.image if case.image is not None else request.get("url")


CLIENT_CASES = [c for c in CASES if "raw" not in c.tags]


@pytest.mark.parametrize("transport", ["gateway", "rie"])
@pytest.mark.parametrize("case", CLIENT_CASES, ids=str)
def test_client(case: Case, transport: str, stack: Any, upstream: Any) -> None:
    endpoint = f"{stack.gateway_url}/predict" if transport == "gateway" else stack.rie_url
    with flowers_client.FlowersClient(endpoint, max_retries=0, timeout=(2, 30)) as client:
        if case.code is None:
            result = client.classify(_client_input(case, upstream), top_k=5, reject=case.reject)
            assert result.request_id
            assert len(result.predictions) == 5
            if case.class_id is not None:
                assert result.best.class_id == case.class_id
            assert result.is_flower is not None
            assert result.flower_score is not None
            if case.is_flower is not None:
                assert result.is_flower is case.is_flower
            return
        with pytest.raises(flowers_client.APIStatusError) as caught:
            client.classify(_client_input(case, upstream), top_k=5, reject=case.reject)
    error = caught.value
    if case.code == "not_a_flower":
        assert isinstance(error, flowers_client.NotAFlowerError)
        assert error.flower_score is not None
        assert error.flower_score < 0.5
        assert error.predictions
    assert error.code == case.code
    assert error.status_code == case.status
    assert error.request_id


def test_client_request_matches_schema(stack: Any, upstream: Any) -> None:
    """What the client sends is what the handler accepts (checked against the schema)."""
    import httpx
    from contract.cases import FLOWERS

    sent: list[bytes] = []
    spy = httpx.Client(event_hooks={"request": [lambda request: sent.append(request.read())]})
    with flowers_client.FlowersClient(f"{stack.gateway_url}/predict", http_client=spy) as client:
        client.classify(FLOWERS[0], top_k=3)
        client.classify(upstream.url("/flower.jpg"), top_k=1)
    spy.close()
    assert len(sent) == 2
    for payload in sent:
        _validate("request", json.loads(payload))


def test_gateway_health(stack: Any) -> None:
    response = requests.get(f"{stack.gateway_url}/health", timeout=10)
    assert response.status_code == 200
    _validate("health", response.json())


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/predict", 405), ("POST", "/nope", 404)])
def test_gateway_unknown_routes(stack: Any, method: str, path: str, status: int) -> None:
    response = requests.request(method, f"{stack.gateway_url}{path}", timeout=10)
    assert response.status_code == status
    _validate("error", response.json())


def test_gateway_binary_body_and_query_top_k(stack: Any) -> None:
    from contract.cases import FLOWERS

    response = requests.post(
        f"{stack.gateway_url}/predict?top_k=2",
        data=FLOWERS[0].read_bytes(),
        headers={"Content-Type": "image/jpeg"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 2


@pytest.mark.parametrize(
    ("photo", "query", "status"), [("cat", "true", 422), ("cat", "false", 200), ("flower", "1", 200)]
)
def test_gateway_binary_body_and_query_reject(stack: Any, photo: str, query: str, status: int) -> None:
    from contract.cases import FLOWERS, NONFLOWERS

    path = FLOWERS[0] if photo == "flower" else next(p for p in NONFLOWERS if p.stem == photo)
    response = requests.post(
        f"{stack.gateway_url}/predict?reject={query}&top_k=3",
        data=path.read_bytes(),
        headers={"Content-Type": "image/jpeg"},
        timeout=30,
    )
    assert response.status_code == status, response.text
    body = response.json()
    if status == 422:
        _validate("error", body)
        assert body["error"]["code"] == "not_a_flower"
        assert len(body["error"]["predictions"]) == 3
    else:
        _validate("result", body)
        assert body["is_flower"] is (photo == "flower")


def test_gateway_refuses_oversized_request(stack: Any) -> None:
    response = requests.post(
        f"{stack.gateway_url}/predict",
        data=b"\0" * (10 * 1024 * 1024 + 1),
        headers={"Content-Type": "image/jpeg"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_serving_error_table_matches_the_schema() -> None:
    import flowers_serving.errors as errors

    classes = [getattr(errors, name) for name in errors.__all__]
    table = SCHEMA["x-status-of-code"]
    for cls in classes:
        assert table[cls.code] == cls.status, cls
    assert set(SCHEMA["$defs"]["error_code"]["enum"]) == set(table)


@pytest.mark.parametrize("code", sorted(SCHEMA["x-status-of-code"]))
def test_client_maps_every_code_of_a_direct_invoke_to_its_status(code: str) -> None:
    """Direct invokes carry no HTTP status: the client must derive the schema's status from the code."""
    import httpx

    url = "http://127.0.0.1:9/2015-03-31/functions/function/invocations"
    reply = httpx.Response(200, json={"error": {"code": code, "message": "m"}, "request_id": "r"})
    http = httpx.Client(transport=httpx.MockTransport(lambda request: reply))
    with pytest.raises(flowers_client.APIStatusError) as caught:
        flowers_client.FlowersClient(url, max_retries=0, http_client=http).classify(b"\xff\xd8 not sent anywhere real")
    assert caught.value.status_code == SCHEMA["x-status-of-code"][code]
    assert caught.value.code == code


def test_several_workers_serve_side_by_side(tmp_path: Any) -> None:
    """--workers N: N RIEs (each with its own Runtime API port) behind one gateway, used concurrently."""
    from concurrent.futures import ThreadPoolExecutor

    from contract.cases import FLOWERS

    from flowers_serving.local import free_port
    from flowers_serving.local.__main__ import LocalStack

    with LocalStack(port=free_port(), gateway_port=free_port(), workers=2, log_dir=tmp_path) as local:
        assert len({w.port for w in local.workers}) == 2
        with flowers_client.FlowersClient(f"{local.gateway_url}/predict") as client, ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda p: client.classify(p, top_k=1), FLOWERS * 2))
    assert [r.best.class_id for r in results] == [int(p.name.split("-")[0]) for p in FLOWERS * 2]
