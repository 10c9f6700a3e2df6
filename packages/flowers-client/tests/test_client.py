from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path

import pytest
import requests
import responses
from conftest import GATEWAY, RIE, error_body, result_body

import flowers_client
from flowers_client import (
    APIConnectionError,
    APITimeoutError,
    BadRequestError,
    FlowersClient,
    FunctionError,
    InternalServerError,
    InvalidInputError,
    PayloadTooLargeError,
    RateLimitError,
    ResponseValidationError,
    UnprocessableImageError,
    UnsupportedMediaTypeError,
    UpstreamError,
    UpstreamTimeoutError,
)

JPEG = b"\xff\xd8\xff\xe0fake-jpeg-bytes"


def sent_json(mocked: responses.RequestsMock, index: int = 0) -> dict[str, object]:
    body = mocked.calls[index].request.body
    assert isinstance(body, bytes)
    result: dict[str, object] = json.loads(body)
    return result


# --- inputs -----------------------------------------------------------------


def test_url_is_sent_for_the_server_to_fetch(mocked: responses.RequestsMock) -> None:
    mocked.post(GATEWAY, json=result_body())
    result = FlowersClient(GATEWAY).classify("https://example.com/rose.jpg", top_k=3)
    assert sent_json(mocked) == {"url": "https://example.com/rose.jpg", "top_k": 3}
    assert result.best.label == "sunflower"
    assert result.request_id == "req-1"


@pytest.mark.parametrize("kind", ["str", "path", "bytes", "bytearray", "file"])
def test_local_images_are_sent_inline(kind: str, tmp_path: Path, mocked: responses.RequestsMock) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(JPEG)
    image = {"str": str(path), "path": path, "bytes": JPEG, "bytearray": bytearray(JPEG), "file": io.BytesIO(JPEG)}[
        kind
    ]
    mocked.post(GATEWAY, json=result_body())
    FlowersClient(GATEWAY).classify(image)
    assert sent_json(mocked) == {"image": base64.b64encode(JPEG).decode(), "top_k": 10}


def test_missing_file_is_an_input_error_and_nothing_is_sent(mocked: responses.RequestsMock) -> None:
    with pytest.raises(InvalidInputError, match="no such file"):
        FlowersClient(GATEWAY).classify("does/not/exist.jpg")
    assert not mocked.calls


def test_text_mode_file_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="binary"):
        FlowersClient(GATEWAY).classify(io.StringIO("text"))  # type: ignore[arg-type]


@pytest.mark.parametrize(("endpoint", "limit"), [(GATEWAY, 10 * 1024 * 1024), (RIE, 6 * 1024 * 1024)])
def test_size_is_checked_before_sending(endpoint: str, limit: int, mocked: responses.RequestsMock) -> None:
    too_big = b"\0" * (limit * 3 // 4)
    with pytest.raises(InvalidInputError, match="too large"):
        FlowersClient(endpoint).classify(too_big)
    assert not mocked.calls
    assert isinstance(InvalidInputError("x"), ValueError)


@pytest.mark.parametrize("top_k", [0, 103])
def test_top_k_is_checked_locally(top_k: int) -> None:
    with pytest.raises(InvalidInputError):
        FlowersClient(GATEWAY).classify(JPEG, top_k=top_k)


# --- transports ---------------------------------------------------------------


def test_transport_is_chosen_from_the_url() -> None:
    assert FlowersClient(GATEWAY).transport == "api-gateway"
    assert FlowersClient(RIE).transport == "rie"
    assert FlowersClient(GATEWAY, transport="rie").transport == "rie"
    with pytest.raises(ValueError, match="transport"):
        FlowersClient(GATEWAY, transport="carrier-pigeon")
    with pytest.raises(ValueError, match="http"):
        FlowersClient("ftp://example.com/predict")


def test_endpoint_and_api_key_from_environment(monkeypatch: pytest.MonkeyPatch, mocked: responses.RequestsMock) -> None:
    monkeypatch.setenv("FLOWERS_ENDPOINT", GATEWAY)
    monkeypatch.setenv("FLOWERS_API_KEY", "secret-key")
    mocked.post(GATEWAY, json=result_body())
    result = flowers_client.classify(JPEG)
    assert result.model == "flowers-efficientnet-lite0"
    assert mocked.calls[0].request.headers["x-api-key"] == "secret-key"


def test_request_id_from_gateway_header(mocked: responses.RequestsMock) -> None:
    body = result_body()
    del body["request_id"]
    mocked.post(GATEWAY, json=body, headers={"x-amzn-RequestId": "gw-123"})
    assert FlowersClient(GATEWAY).classify(JPEG).request_id == "gw-123"


def test_callers_session_is_used_and_not_closed(mocked: responses.RequestsMock) -> None:
    session = requests.Session()
    session.headers["X-Custom"] = "yes"
    mocked.post(GATEWAY, json=result_body())
    with FlowersClient(GATEWAY, session=session) as client:
        client.classify(JPEG)
    assert mocked.calls[0].request.headers["X-Custom"] == "yes"
    mocked.post(GATEWAY, json=result_body())
    session.post(GATEWAY)  # still usable: the client did not close it


# --- errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "bad_request", BadRequestError),
        (400, "forbidden_url", BadRequestError),
        (413, "payload_too_large", PayloadTooLargeError),
        (415, "unsupported_media_type", UnsupportedMediaTypeError),
        (422, "undecodable_image", UnprocessableImageError),
        (422, "image_too_large", UnprocessableImageError),
        (429, None, RateLimitError),
        (500, "internal_error", InternalServerError),
        (502, "upstream_error", UpstreamError),
        (504, "upstream_timeout", UpstreamTimeoutError),
    ],
)
def test_gateway_error_statuses(
    status: int, code: str | None, cls: type[Exception], mocked: responses.RequestsMock
) -> None:
    body = error_body(code) if code else {"message": "Too Many Requests"}
    mocked.post(GATEWAY, json=body, status=status, headers={"x-amzn-RequestId": "gw-1"})
    with pytest.raises(cls) as caught:
        FlowersClient(GATEWAY, max_retries=0).classify(JPEG)
    error = caught.value
    assert isinstance(error, flowers_client.APIStatusError)
    assert error.status_code == status
    assert error.code == code
    assert error.request_id == ("req-err" if code else "gw-1")


@pytest.mark.parametrize(
    ("code", "cls", "status"),
    [
        ("bad_request", BadRequestError, 400),
        ("payload_too_large", PayloadTooLargeError, 413),
        ("unsupported_media_type", UnsupportedMediaTypeError, 415),
        ("undecodable_image", UnprocessableImageError, 422),
        ("upstream_error", UpstreamError, 502),
        ("upstream_timeout", UpstreamTimeoutError, 504),
    ],
)
def test_rie_error_objects_map_by_code(
    code: str, cls: type[Exception], status: int, mocked: responses.RequestsMock
) -> None:
    mocked.post(RIE, json=error_body(code), status=200)
    with pytest.raises(cls) as caught:
        FlowersClient(RIE, max_retries=0).classify(JPEG)
    assert getattr(caught.value, "status_code", None) == status


def test_rie_handler_exception_quirk(mocked: responses.RequestsMock) -> None:
    # The RIE answers a raised exception with HTTP 200 and no X-Amz-Function-Error header.
    mocked.post(RIE, json={"errorType": "KeyError", "errorMessage": "'x'", "requestId": "abc"}, status=200)
    with pytest.raises(FunctionError) as caught:
        FlowersClient(RIE, max_retries=0).classify(JPEG)
    assert caught.value.error_type == "KeyError"
    assert "KeyError" in str(caught.value)


def test_rie_timeout_quirk(mocked: responses.RequestsMock) -> None:
    mocked.post(RIE, body="Task timed out after 3.00 seconds", status=200, content_type="text/plain")
    with pytest.raises(FunctionError, match="timed out") as caught:
        FlowersClient(RIE, max_retries=0).classify(JPEG)
    assert caught.value.error_type == "Task.TimedOut"


def test_rie_crashed_runtime_quirk(mocked: responses.RequestsMock) -> None:
    mocked.post(RIE, body="", status=200)
    with pytest.raises(FunctionError, match="empty"):
        FlowersClient(RIE, max_retries=0).classify(JPEG)


def test_invalid_success_body(mocked: responses.RequestsMock) -> None:
    mocked.post(
        GATEWAY, json={"predictions": [{"label": "x", "class_id": 999, "score": 2}], "model": "m", "model_version": "1"}
    )
    with pytest.raises(ResponseValidationError):
        FlowersClient(GATEWAY).classify(JPEG)
    mocked.post(GATEWAY, body="<html>", status=200)
    with pytest.raises(ResponseValidationError):
        FlowersClient(GATEWAY).classify(JPEG)


def test_connection_errors_are_ours(mocked: responses.RequestsMock) -> None:
    mocked.post(GATEWAY, body=requests.ConnectionError("refused"))
    with pytest.raises(APIConnectionError):
        FlowersClient(GATEWAY, max_retries=0).classify(JPEG)
    mocked.post(GATEWAY, body=requests.ReadTimeout("slow"))
    with pytest.raises(APITimeoutError):
        FlowersClient(GATEWAY, max_retries=0).classify(JPEG)


# --- retries ------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried(status: int, mocked: responses.RequestsMock, waits: list[float]) -> None:
    mocked.post(GATEWAY, json=error_body("internal_error"), status=status)
    mocked.post(GATEWAY, json=error_body("internal_error"), status=status)
    mocked.post(GATEWAY, json=result_body())
    result = FlowersClient(GATEWAY, max_retries=2).classify(JPEG)
    assert result.best.class_id == 54
    assert len(mocked.calls) == 3
    assert len(waits) == 2
    assert 0.375 <= waits[0] <= 0.5  # 0.5 s with up to 25% jitter
    assert 0.75 <= waits[1] <= 1.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 415, 422])
def test_client_errors_are_never_retried(status: int, mocked: responses.RequestsMock, waits: list[float]) -> None:
    mocked.post(GATEWAY, json=error_body("bad_request"), status=status)
    with pytest.raises(flowers_client.APIStatusError):
        FlowersClient(GATEWAY, max_retries=5).classify(JPEG)
    assert len(mocked.calls) == 1
    assert waits == []


def test_retries_give_up_with_the_last_error(mocked: responses.RequestsMock, waits: list[float]) -> None:
    mocked.post(GATEWAY, json=error_body("internal_error"), status=503)
    with pytest.raises(InternalServerError):
        FlowersClient(GATEWAY, max_retries=3).classify(JPEG)
    assert len(mocked.calls) == 4
    assert len(waits) == 3


def test_max_retries_zero_disables_retries(mocked: responses.RequestsMock) -> None:
    mocked.post(GATEWAY, body=requests.ConnectionError("refused"))
    with pytest.raises(APIConnectionError):
        FlowersClient(GATEWAY, max_retries=0).classify(JPEG)
    assert len(mocked.calls) == 1


def test_connection_errors_and_timeouts_are_retried(mocked: responses.RequestsMock, waits: list[float]) -> None:
    mocked.post(GATEWAY, body=requests.ConnectionError("refused"))
    mocked.post(GATEWAY, body=requests.ConnectTimeout("slow"))
    mocked.post(GATEWAY, json=result_body())
    FlowersClient(GATEWAY, max_retries=2).classify(JPEG)
    assert len(mocked.calls) == 3


@pytest.mark.parametrize(("header", "expected"), [("7", 7.0), ("0.25", 0.25)])
def test_retry_after_seconds_is_honoured(
    header: str, expected: float, mocked: responses.RequestsMock, waits: list[float]
) -> None:
    mocked.post(GATEWAY, json={"message": "Too Many Requests"}, status=429, headers={"Retry-After": header})
    mocked.post(GATEWAY, json=result_body())
    FlowersClient(GATEWAY).classify(JPEG)
    assert waits == [expected]


def test_retry_after_http_date_is_honoured(mocked: responses.RequestsMock, waits: list[float]) -> None:
    import email.utils
    import time

    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    mocked.post(GATEWAY, json={"message": "Too Many Requests"}, status=429, headers={"Retry-After": when})
    mocked.post(GATEWAY, json=result_body())
    FlowersClient(GATEWAY).classify(JPEG)
    assert 27 <= waits[0] <= 30


def test_retry_after_beyond_the_cap_falls_back_to_backoff(mocked: responses.RequestsMock, waits: list[float]) -> None:
    mocked.post(GATEWAY, json={"message": "busy"}, status=503, headers={"Retry-After": "3600"})
    mocked.post(GATEWAY, json=result_body())
    FlowersClient(GATEWAY).classify(JPEG)
    assert waits[0] <= 0.5


def test_retries_are_logged(mocked: responses.RequestsMock, caplog: pytest.LogCaptureFixture) -> None:
    mocked.post(GATEWAY, json=error_body("internal_error"), status=500)
    mocked.post(GATEWAY, json=result_body())
    with caplog.at_level(logging.INFO, logger="flowers_client"):
        FlowersClient(GATEWAY, api_key="top-secret").classify(JPEG)
    assert any("retrying" in r.getMessage() for r in caplog.records)
    assert all("top-secret" not in r.getMessage() for r in caplog.records)


def test_debug_logging_redacts_api_key(mocked: responses.RequestsMock, caplog: pytest.LogCaptureFixture) -> None:
    mocked.post(GATEWAY, json=result_body())
    with caplog.at_level(logging.DEBUG, logger="flowers_client"):
        FlowersClient(GATEWAY, api_key="top-secret").classify(JPEG)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "POST https://api.example.test/prod/predict" in messages
    assert "top-secret" not in messages
    assert "***" in messages


# --- models and batch ---------------------------------------------------------


def test_top_k_sorts_truncates_and_filters() -> None:
    shuffled = [
        flowers_client.Prediction(label="c", class_id=3, score=0.1),
        flowers_client.Prediction(label="a", class_id=1, score=0.6),
        flowers_client.Prediction(label="b", class_id=2, score=0.3),
    ]
    assert [p.label for p in flowers_client.top_k(shuffled, 2)] == ["a", "b"]
    assert [p.label for p in flowers_client.top_k(shuffled, 5, min_score=0.2)] == ["a", "b"]
    assert flowers_client.top_k(shuffled, 0) == []
    result = flowers_client.ClassifyResult(predictions=shuffled, model="m", model_version="1")
    assert result.best.label == "a"  # by score, not by position
    assert flowers_client.top_k(result, 1)[0].label == "a"


def test_results_tolerate_extra_fields() -> None:
    result = flowers_client.ClassifyResult.model_validate(result_body(new_field={"x": 1}))
    assert result.model_extra == {"new_field": {"x": 1}}


def test_classify_many_keeps_order_and_isolates_errors(mocked: responses.RequestsMock) -> None:
    def reply(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body or b"{}")
        if body.get("url", "").endswith("bad.jpg"):
            return 422, {}, json.dumps(error_body("undecodable_image"))
        return 200, {}, json.dumps(result_body(request_id=body.get("url", "inline")))

    mocked.add_callback(responses.POST, GATEWAY, callback=reply)
    urls = [f"https://example.com/{i}.jpg" for i in range(12)]
    urls[5] = "https://example.com/bad.jpg"
    seen: list[int] = []
    with FlowersClient(GATEWAY, max_retries=0) as client:
        items = client.classify_many(urls, concurrency=4, on_progress=lambda item: seen.append(item.index))
    assert [item.index for item in items] == list(range(12))
    assert [item.input for item in items] == urls
    assert not items[5].ok
    assert isinstance(items[5].error, UnprocessableImageError)
    assert all(
        item.ok and item.result and item.result.request_id == item.input for i, item in enumerate(items) if i != 5
    )
    assert sorted(seen) == list(range(12))
