"""The sync client through httpx's MockTransport: what it sends, how it reads every reply, when it retries."""

from __future__ import annotations

import base64
import email.utils
import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import GATEWAY, RIE, Recorder, error_body, ok, result_body

import flowers_client
from flowers_client import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    BadRequestError,
    FlowersClient,
    FunctionError,
    InternalServerError,
    InvalidInputError,
    NotAFlowerError,
    PayloadTooLargeError,
    RateLimitError,
    ResponseValidationError,
    UnprocessableImageError,
    UnsupportedMediaTypeError,
    UpstreamError,
    UpstreamTimeoutError,
)

JPEG = b"\xff\xd8\xff\xe0fake-jpeg-bytes"


def client(recorder: Recorder, endpoint: str = GATEWAY, **options: object) -> FlowersClient:
    return FlowersClient(endpoint, http_client=recorder.sync(), **options)  # type: ignore[arg-type]


# --- inputs -----------------------------------------------------------------------------


def test_url_is_sent_for_the_server_to_fetch() -> None:
    recorder = Recorder(ok())
    result = client(recorder).classify("https://example.com/rose.jpg", top_k=3)
    assert recorder.sent() == {"url": "https://example.com/rose.jpg", "top_k": 3}
    assert result.best.label == "sunflower"
    assert result.request_id == "req-1"


@pytest.mark.parametrize("kind", ["str", "path", "bytes", "bytearray", "file"])
def test_local_images_are_sent_inline(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(JPEG)
    image = {"str": str(path), "path": path, "bytes": JPEG, "bytearray": bytearray(JPEG), "file": io.BytesIO(JPEG)}[
        kind
    ]
    recorder = Recorder(ok())
    client(recorder).classify(image)
    assert recorder.sent() == {"image": base64.b64encode(JPEG).decode(), "top_k": 10}


def test_reject_is_sent_only_when_true() -> None:
    recorder = Recorder(ok())
    with client(recorder) as c:
        c.classify(JPEG, reject=True)
        c.classify(JPEG, reject=False)
        c.classify("https://example.com/a.jpg", top_k=2, reject=True)
    assert recorder.sent(0)["reject"] is True
    assert "reject" not in recorder.sent(1)
    assert recorder.sent(2) == {"url": "https://example.com/a.jpg", "top_k": 2, "reject": True}


def test_missing_file_is_an_input_error_and_nothing_is_sent() -> None:
    recorder = Recorder(ok())
    with pytest.raises(InvalidInputError, match="no such file"):
        client(recorder).classify("does/not/exist.jpg")
    assert not recorder.requests


def test_text_mode_file_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="binary"):
        client(Recorder(ok())).classify(io.StringIO("text"))  # type: ignore[arg-type]


@pytest.mark.parametrize(("endpoint", "limit"), [(GATEWAY, 10 * 1024 * 1024), (RIE, 6 * 1024 * 1024)])
def test_size_is_checked_before_sending(endpoint: str, limit: int) -> None:
    recorder = Recorder(ok())
    with pytest.raises(InvalidInputError, match="too large"):
        client(recorder, endpoint).classify(b"\0" * (limit * 3 // 4))
    assert not recorder.requests
    assert isinstance(InvalidInputError("x"), ValueError)


@pytest.mark.parametrize("top_k", [0, 103])
def test_top_k_is_checked_locally(top_k: int) -> None:
    with pytest.raises(InvalidInputError):
        client(Recorder(ok())).classify(JPEG, top_k=top_k)


def test_find_images_is_recursive_sorted_and_skips_hidden(tmp_path: Path) -> None:
    for name in ("b.jpg", "a.PNG", "notes.txt", ".hidden.jpg", "sub/c.webp", "sub/deeper/d.jpeg", ".git/e.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(JPEG)
    found = [p.relative_to(tmp_path).as_posix() for p in flowers_client.find_images(tmp_path)]
    assert found == ["a.PNG", "b.jpg", "sub/c.webp", "sub/deeper/d.jpeg"]
    with pytest.raises(InvalidInputError):
        flowers_client.find_images(tmp_path / "b.jpg")


# --- what goes on the wire -----------------------------------------------------------------


def test_transport_is_chosen_from_the_url() -> None:
    assert FlowersClient(GATEWAY).transport == "api-gateway"
    assert FlowersClient(RIE).transport == "rie"
    assert FlowersClient(GATEWAY, transport="rie").transport == "rie"
    with pytest.raises(ValueError, match="transport"):
        FlowersClient(GATEWAY, transport="carrier-pigeon")
    with pytest.raises(ValueError, match="http"):
        FlowersClient("ftp://example.com/predict")
    with pytest.raises(ValueError, match="deadline"):
        FlowersClient(GATEWAY, deadline=0)


def test_headers_endpoint_and_api_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWERS_ENDPOINT", GATEWAY)
    monkeypatch.setenv("FLOWERS_API_KEY", "secret-key")
    recorder = Recorder(ok())
    with FlowersClient(http_client=recorder.sync()) as c:
        assert c.classify(JPEG).model == "flowers-efficientnet-lite0"
    request = recorder.requests[0]
    assert str(request.url) == GATEWAY
    assert request.headers["x-api-key"] == "secret-key"
    assert request.headers["user-agent"] == f"flowers-client/{flowers_client.__version__}"
    assert request.headers["content-type"] == "application/json"


def test_request_id_from_gateway_header() -> None:
    body = result_body()
    del body["request_id"]
    recorder = Recorder(httpx.Response(200, json=body, headers={"x-amzn-RequestId": "gw-123"}))
    assert client(recorder).classify(JPEG).request_id == "gw-123"


def test_callers_http_client_is_used_and_not_closed() -> None:
    recorder = Recorder(ok())
    http = httpx.Client(transport=httpx.MockTransport(recorder), headers={"X-Custom": "yes"})
    with FlowersClient(GATEWAY, http_client=http) as c:
        c.classify(JPEG)
    assert recorder.requests[0].headers["X-Custom"] == "yes"
    assert not http.is_closed


def test_raw_response_of_a_success_and_of_an_error() -> None:
    recorder = Recorder(
        httpx.Response(200, json=result_body(), headers={"x-amzn-RequestId": "gw-1", "X-Extra": "1"}),
        httpx.Response(422, json=error_body("undecodable_image"), headers={"x-amzn-RequestId": "gw-2"}),
    )
    with client(recorder) as c:
        raw = c.classify(JPEG).raw_response
        assert raw is not None
        assert (raw.status_code, raw.headers["x-extra"], raw.url) == (200, "1", GATEWAY)
        assert raw.json() == result_body()
        with pytest.raises(UnprocessableImageError) as caught:
            c.classify(JPEG)
    error_raw = caught.value.response
    assert error_raw is not None
    assert (error_raw.status_code, error_raw.headers["X-AMZN-REQUESTID"]) == (422, "gw-2")
    assert json.loads(error_raw.text)["error"]["code"] == "undecodable_image"


def test_flower_fields_are_read_and_optional() -> None:
    recorder = Recorder(ok(is_flower=False, flower_score=0.12), ok())
    with client(recorder) as c:
        result = c.classify(JPEG)
        assert (result.is_flower, result.flower_score) == (False, 0.12)
        older = c.classify(JPEG)  # a service that predates the fields still validates
        assert (older.is_flower, older.flower_score) == (None, None)


def test_flower_score_out_of_range_is_not_a_valid_result() -> None:
    with pytest.raises(ResponseValidationError):
        client(Recorder(ok(flower_score=1.5))).classify(JPEG)


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (400, error_body("bad_request"), BadRequestError),
        (400, error_body("forbidden_url"), BadRequestError),
        (413, error_body("payload_too_large"), PayloadTooLargeError),
        (415, error_body("unsupported_media_type"), UnsupportedMediaTypeError),
        (422, error_body("undecodable_image"), UnprocessableImageError),
        (413, error_body("image_too_large"), PayloadTooLargeError),
        (422, error_body("not_a_flower", flower_score=0.1, predictions=[]), NotAFlowerError),
        (429, {"message": "Too Many Requests"}, RateLimitError),
        (500, error_body("internal_error"), InternalServerError),
        (502, error_body("upstream_error"), UpstreamError),
        (504, error_body("upstream_timeout"), UpstreamTimeoutError),
        (504, error_body("integration_timeout"), InternalServerError),
        # API Gateway's own bodies name no code: our side failed, not the image URL's server.
        (502, {"message": "Internal server error"}, InternalServerError),
        (504, {"message": "Endpoint request timed out"}, InternalServerError),
        (403, {"message": "Forbidden"}, flowers_client.AuthenticationError),
    ],
)
def test_gateway_error_statuses(status: int, body: dict[str, object], cls: type[Exception]) -> None:
    recorder = Recorder(httpx.Response(status, json=body, headers={"x-amzn-RequestId": "gw-1"}))
    with pytest.raises(cls) as caught:
        client(recorder, max_retries=0).classify(JPEG)
    error = caught.value
    assert type(error) is cls
    assert isinstance(error, APIStatusError)
    assert error.status_code == status
    code = body["error"]["code"] if "error" in body else None  # type: ignore[index]
    assert error.code == code
    assert error.request_id == ("req-err" if code else "gw-1")
    assert error.message


@pytest.mark.parametrize(
    ("code", "cls", "status"),
    [
        ("bad_request", BadRequestError, 400),
        ("payload_too_large", PayloadTooLargeError, 413),
        ("image_too_large", PayloadTooLargeError, 413),
        ("unsupported_media_type", UnsupportedMediaTypeError, 415),
        ("undecodable_image", UnprocessableImageError, 422),
        ("not_a_flower", NotAFlowerError, 422),
        ("upstream_error", UpstreamError, 502),
        ("upstream_timeout", UpstreamTimeoutError, 504),
        ("internal_error", InternalServerError, 500),
    ],
)
def test_rie_error_objects_map_by_code(code: str, cls: type[Exception], status: int) -> None:
    with pytest.raises(cls) as caught:
        client(Recorder(httpx.Response(200, json=error_body(code))), RIE, max_retries=0).classify(JPEG)
    assert type(caught.value) is cls
    assert getattr(caught.value, "status_code", None) == status


def test_not_a_flower_carries_score_and_guesses() -> None:
    guesses = result_body()["predictions"]
    for where in ("inside", "beside"):
        body = (
            error_body("not_a_flower", "no flower here", flower_score=0.07, predictions=guesses)
            if where == "inside"
            else {**error_body("not_a_flower", "no flower here"), "flower_score": 0.07, "predictions": guesses}
        )
        with pytest.raises(NotAFlowerError) as caught:
            client(Recorder(httpx.Response(422, json=body))).classify(JPEG, reject=True)
        error = caught.value
        assert isinstance(error, UnprocessableImageError)
        assert error.flower_score == 0.07
        assert [p.label for p in error.predictions] == ["sunflower", "daisy", "barbeton daisy"]
        assert error.to_dict()["flower_score"] == 0.07


def test_rie_handler_exception_quirk() -> None:
    # The RIE answers a raised exception with HTTP 200 and no X-Amz-Function-Error header.
    recorder = Recorder(httpx.Response(200, json={"errorType": "KeyError", "errorMessage": "'x'", "requestId": "a"}))
    with pytest.raises(FunctionError) as caught:
        client(recorder, RIE, max_retries=0).classify(JPEG)
    assert caught.value.error_type == "KeyError"
    assert "KeyError" in str(caught.value)


def test_rie_timeout_and_crash_quirks() -> None:
    recorder = Recorder(httpx.Response(200, text="Task timed out after 3.00 seconds"), httpx.Response(200, text=""))
    with client(recorder, RIE, max_retries=0) as c:
        with pytest.raises(FunctionError, match="timed out") as caught:
            c.classify(JPEG)
        assert caught.value.error_type == "Task.TimedOut"
        with pytest.raises(FunctionError, match="empty"):
            c.classify(JPEG)


def test_invalid_success_bodies() -> None:
    bad = {"predictions": [{"label": "x", "class_id": 999, "score": 2}], "model": "m", "model_version": "1"}
    recorder = Recorder(
        httpx.Response(200, json=bad),
        httpx.Response(200, text="<html>"),
        httpx.Response(200, content=b"{" + b" " * (2 * 1024 * 1024) + b"}"),
    )
    with client(recorder) as c:
        for _ in range(3):
            with pytest.raises(ResponseValidationError):
                c.classify(JPEG)


def test_connection_errors_are_ours_and_short() -> None:
    request = httpx.Request("POST", GATEWAY)
    recorder = Recorder(
        httpx.ConnectError("[Errno 111] Connection refused", request=request),
        httpx.ReadTimeout("timed out", request=request),
    )
    with client(recorder, max_retries=0) as c:
        with pytest.raises(APIConnectionError) as caught:
            c.classify(JPEG)
        assert str(caught.value) == f"cannot reach {GATEWAY}: connection refused"
        with pytest.raises(APITimeoutError):
            c.classify(JPEG)


def test_error_to_dict_shape() -> None:
    recorder = Recorder(httpx.Response(422, json=error_body("undecodable_image", "bad bytes")))
    with pytest.raises(UnprocessableImageError) as caught:
        client(recorder).classify(JPEG)
    assert caught.value.to_dict() == {
        "type": "UnprocessableImageError",
        "code": "undecodable_image",
        "status": 422,
        "message": "bad bytes",
        "request_id": "req-err",
    }


# --- retries --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried(status: int, waits: list[float]) -> None:
    failure = httpx.Response(status, json=error_body("internal_error"))
    recorder = Recorder(failure, failure, ok())
    assert client(recorder, max_retries=2).classify(JPEG).best.class_id == 54
    assert len(recorder.requests) == 3
    assert len(waits) == 2
    assert 0.375 <= waits[0] <= 0.5  # 0.5 s with up to 25% jitter
    assert 0.75 <= waits[1] <= 1.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 415, 422])
def test_client_errors_are_never_retried(status: int, waits: list[float]) -> None:
    recorder = Recorder(httpx.Response(status, json=error_body("bad_request")))
    with pytest.raises(APIStatusError):
        client(recorder, max_retries=5).classify(JPEG)
    assert len(recorder.requests) == 1
    assert waits == []


@pytest.mark.parametrize(
    ("error", "attempts"),
    [
        (error_body("upstream_error", "whatever", upstream_status=404), 1),
        (error_body("upstream_error", "the image URL answered HTTP 403"), 1),  # services without the field
        (error_body("upstream_error", "the image URL answered HTTP 410"), 1),
        (error_body("upstream_error", "the image URL answered HTTP 503"), 3),
        (error_body("upstream_error", "could not fetch the image: ConnectionError"), 3),
        (error_body("upstream_error", "x", upstream_status=429), 3),
    ],
)
def test_upstream_4xx_is_permanent_and_5xx_is_retried(
    error: dict[str, object], attempts: int, waits: list[float]
) -> None:
    recorder = Recorder(httpx.Response(502, json=error))
    with pytest.raises(UpstreamError) as caught:
        client(recorder, max_retries=2).classify("https://example.com/x.jpg")
    assert len(recorder.requests) == attempts
    assert caught.value.upstream_status != 0


def test_not_a_flower_is_not_retried(waits: list[float]) -> None:
    recorder = Recorder(httpx.Response(200, json=error_body("not_a_flower")))
    with pytest.raises(NotAFlowerError):
        client(recorder, RIE, max_retries=3).classify(JPEG, reject=True)
    assert len(recorder.requests) == 1


def test_retries_give_up_with_the_last_error(waits: list[float]) -> None:
    recorder = Recorder(httpx.Response(503, json=error_body("internal_error")))
    with pytest.raises(InternalServerError):
        client(recorder, max_retries=3).classify(JPEG)
    assert len(recorder.requests) == 4
    assert len(waits) == 3


def test_max_retries_zero_disables_retries(waits: list[float]) -> None:
    recorder = Recorder(httpx.ConnectError("refused"))
    with pytest.raises(APIConnectionError):
        client(recorder, max_retries=0).classify(JPEG)
    assert len(recorder.requests) == 1


def test_connection_errors_and_timeouts_are_retried(waits: list[float]) -> None:
    recorder = Recorder(httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), ok())
    client(recorder, max_retries=2).classify(JPEG)
    assert len(recorder.requests) == 3


@pytest.mark.parametrize(("header", "expected"), [("7", 7.0), ("0.25", 0.25)])
def test_retry_after_seconds_is_honoured(header: str, expected: float, waits: list[float]) -> None:
    recorder = Recorder(
        httpx.Response(429, json={"message": "Too Many Requests"}, headers={"Retry-After": header}), ok()
    )
    client(recorder).classify(JPEG)
    assert waits == [expected]


def test_retry_after_http_date_is_honoured(waits: list[float]) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    recorder = Recorder(httpx.Response(429, json={"message": "Too Many Requests"}, headers={"Retry-After": when}), ok())
    client(recorder).classify(JPEG)
    assert 27 <= waits[0] <= 30


def test_retry_after_beyond_the_cap_falls_back_to_backoff(waits: list[float]) -> None:
    recorder = Recorder(httpx.Response(503, json={"message": "busy"}, headers={"Retry-After": "3600"}), ok())
    client(recorder).classify(JPEG)
    assert waits[0] <= 0.5


def test_no_retry_whose_wait_would_pass_the_deadline(waits: list[float]) -> None:
    recorder = Recorder(httpx.Response(503, json={"message": "busy"}, headers={"Retry-After": "30"}), ok())
    with pytest.raises(InternalServerError):
        client(recorder, deadline=10).classify(JPEG)
    assert len(recorder.requests) == 1
    assert waits == []


def test_a_trickling_reply_cannot_outlast_the_attempts_budget() -> None:
    """Each chunk arrives quickly, the whole never does: the attempt ends after connect + read seconds."""
    sent: list[int] = []
    pause = threading.Event()

    def trickle() -> Iterator[bytes]:
        for i in range(200):
            pause.wait(0.05)
            sent.append(i)
            yield b" "

    recorder = Recorder(lambda request: httpx.Response(200, content=trickle()))
    with pytest.raises(APITimeoutError):
        client(recorder, timeout=(0.1, 0.3), max_retries=0).classify(JPEG)
    assert len(sent) < 200


def test_the_deadline_covers_every_attempt() -> None:
    pause = threading.Event()

    def slow_failure(request: httpx.Request) -> httpx.Response:
        pause.wait(0.2)
        return httpx.Response(503, json=error_body("internal_error"), headers={"Retry-After": "0"})

    recorder = Recorder(slow_failure)
    with pytest.raises((InternalServerError, APITimeoutError)):
        client(recorder, max_retries=1000, deadline=1.0).classify(JPEG)
    assert len(recorder.requests) < 1000


def test_with_options_changes_settings_and_shares_connections(waits: list[float]) -> None:
    recorder = Recorder(httpx.Response(503, json=error_body("internal_error")))
    base = client(recorder, max_retries=3)
    fast = base.with_options(timeout=2, max_retries=0, deadline=None)
    assert (fast.max_retries, fast.deadline, fast.timeout.read, fast.endpoint) == (0, None, 2, GATEWAY)
    assert (base.max_retries, base.deadline) == (3, flowers_client.DEFAULT_DEADLINE)
    with pytest.raises(InternalServerError):
        fast.classify(JPEG)
    assert len(recorder.requests) == 1
    fast.close()  # the copy does not own the connections
    recorder.replies = [ok()]
    assert base.classify(JPEG).best.class_id == 54


def test_retries_are_logged(caplog: pytest.LogCaptureFixture, waits: list[float]) -> None:
    recorder = Recorder(httpx.Response(500, json=error_body("internal_error")), ok())
    with caplog.at_level(logging.INFO, logger="flowers_client"):
        client(recorder, api_key="top-secret").classify(JPEG)
    assert any("retrying" in r.getMessage() for r in caplog.records)
    assert all("top-secret" not in r.getMessage() for r in caplog.records)


def test_debug_logging_redacts_api_key(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="flowers_client"):
        client(Recorder(ok()), api_key="top-secret").classify(JPEG)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert f"POST {GATEWAY}" in messages
    assert "top-secret" not in messages
    assert "***" in messages


# --- models -----------------------------------------------------------------------------------


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


def test_batch_items_serialise_and_load_back() -> None:
    success = flowers_client.BatchSuccess(
        index=0, input="a.jpg", result=flowers_client.ClassifyResult.model_validate(result_body(is_flower=True))
    )
    guesses = [flowers_client.Prediction(label="rose", class_id=74, score=0.4)]
    failure = flowers_client.BatchFailure(
        index=1,
        input="b.jpg",
        error=NotAFlowerError("no", status_code=422, code="not_a_flower", flower_score=0.1, predictions=guesses),
    )
    assert json.loads(failure.model_dump_json())["error"] == {
        "type": "NotAFlowerError",
        "code": "not_a_flower",
        "status": 422,
        "message": "no",
        "request_id": None,
        "flower_score": 0.1,
        "predictions": [{"label": "rose", "class_id": 74, "score": 0.4}],
    }
    for item in (success, failure):
        again = flowers_client.BATCH_ITEM.validate_json(item.model_dump_json())
        assert type(again) is type(item)
        assert again.model_dump() == item.model_dump()
    loaded = flowers_client.BATCH_ITEM.validate_json(failure.model_dump_json())
    assert isinstance(loaded.error, NotAFlowerError)
    assert loaded.error.predictions == guesses
    assert success.error is None
    assert failure.result is None


# --- batches ----------------------------------------------------------------------------------


def url_reply(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    if body.get("url", "").endswith("bad.jpg"):
        return httpx.Response(422, json=error_body("undecodable_image"))
    return httpx.Response(200, json=result_body(request_id=body.get("url", "inline")))


def test_classify_many_keeps_order_and_isolates_errors() -> None:
    urls = [f"https://example.com/{i}.jpg" for i in range(12)]
    urls[5] = "https://example.com/bad.jpg"
    seen: list[int] = []
    with client(Recorder(url_reply), max_retries=0) as c:
        items = c.classify_many(urls, concurrency=4, on_progress=lambda item: seen.append(item.index))
    assert [item.index for item in items] == list(range(12))
    assert [item.input for item in items] == urls
    failed = items[5]
    assert not failed.ok
    assert isinstance(failed.error, UnprocessableImageError)
    for item in items[:5] + items[6:]:
        assert item.ok
        assert item.result.request_id == item.input
    assert sorted(seen) == list(range(12))


def test_iter_classify_yields_items_as_they_finish() -> None:
    first_done = threading.Event()

    def reply(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["url"].endswith("/0.jpg"):
            first_done.wait(30)  # input 0 answers only after the consumer has seen input 1
        return url_reply(request)

    with client(Recorder(reply)) as c:
        stream = c.iter_classify(["https://example.com/0.jpg", "https://example.com/1.jpg"], concurrency=2)
        first = next(stream)
        first_done.set()
        second = next(stream)
    assert (first.index, first.input) == (1, "https://example.com/1.jpg")
    assert second.index == 0


def test_iter_classify_bounds_concurrency_and_reads_inputs_lazily() -> None:
    lock = threading.Lock()
    in_flight = [0, 0]  # now, most
    pulled: list[int] = []
    pause = threading.Event()

    def reply(request: httpx.Request) -> httpx.Response:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight)
        pause.wait(0.01)
        with lock:
            in_flight[0] -= 1
        return url_reply(request)

    def inputs() -> Iterator[str]:
        for i in range(30):
            pulled.append(i)
            yield f"https://example.com/{i}.jpg"

    with client(Recorder(reply)) as c:
        stream = c.iter_classify(inputs(), concurrency=3)
        next(stream)
        assert len(pulled) <= 4  # three in flight, then one more for the freed slot
        rest = list(stream)
    assert len(rest) == 29
    assert in_flight[1] <= 3


def test_closing_the_stream_stops_scheduling() -> None:
    recorder = Recorder(url_reply)
    with client(recorder) as c:
        stream = c.iter_classify((f"https://example.com/{i}.jpg" for i in range(50)), concurrency=2)
        next(stream)
        stream.close()
    assert len(recorder.requests) <= 2
    with pytest.raises(ValueError, match="concurrency"):
        client(recorder).iter_classify([], concurrency=0)
