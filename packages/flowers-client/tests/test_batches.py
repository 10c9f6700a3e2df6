"""batch_size: inputs packed into batch requests, answered item by item (sync and async, MockTransport)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import GATEWAY, RIE, Recorder, error_body, result_body

from flowers_client import (
    MAX_BATCH_SIZE,
    APIConnectionError,
    AsyncFlowersClient,
    BadRequestError,
    BatchItem,
    FlowersClient,
    InvalidInputError,
    NotAFlowerError,
    PayloadTooLargeError,
    ResponseValidationError,
    UnprocessableImageError,
    UpstreamError,
)
from flowers_client.cli import main

STATUS = {"undecodable_image": 422, "not_a_flower": 422, "upstream_error": 502, "bad_request": 400}


def entry_for(item: dict[str, Any]) -> dict[str, Any]:
    """What the service answers for one item: the image's name says what (bad, notflower, upstream, ...)."""
    name = item.get("url") or item.get("image", "")
    for code in STATUS:
        if code in name:
            extra = {"flower_score": 0.1, "predictions": []} if code == "not_a_flower" else {}
            return {**error_body(code, f"{code} for {name}", **extra), "status": STATUS[code], "request_id": "b-1"}
    return {**result_body(request_id="b-1", label=name), "status": 200}


def batch_service(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    if "images" not in body:
        return httpx.Response(200, json=entry_for(body))
    return httpx.Response(200, json={"results": [entry_for(item) for item in body["images"]], "request_id": "b-1"})


def urls(n: int, **special: str) -> list[str]:
    names = [f"https://example.com/{i}.jpg" for i in range(n)]
    for index, word in special.items():
        names[int(index.lstrip("_"))] = f"https://example.com/{word}.jpg"
    return names


def check_in_order(items: list[BatchItem], inputs: list[str]) -> None:
    assert [item.index for item in items] == list(range(len(inputs)))
    assert [item.input for item in items] == inputs


def test_batches_of_sixteen_answer_item_by_item() -> None:
    recorder = Recorder(batch_service)
    inputs = urls(40, _3="undecodable_image", _20="upstream_error", _39="bad_request")
    with FlowersClient(GATEWAY, http_client=recorder.sync(), max_retries=0) as client:
        items = client.classify_many(inputs, top_k=3, batch_size=16, concurrency=2)
    check_in_order(items, inputs)
    sent = [json.loads(r.content) for r in recorder.requests]
    assert [len(body["images"]) for body in sent] == [16, 16, 8]
    assert all(body["top_k"] == 3 and "reject" not in body for body in sent)
    assert [body["images"][0] for body in sent] == [{"url": inputs[0]}, {"url": inputs[16]}, {"url": inputs[32]}]
    failed = {item.index: item.error for item in items if not item.ok}
    assert set(failed) == {3, 20, 39}
    assert isinstance(failed[3], UnprocessableImageError)
    assert (failed[3].status_code, failed[3].code, failed[3].request_id) == (422, "undecodable_image", "b-1")
    assert isinstance(failed[20], UpstreamError)
    assert failed[20].status_code == 502
    assert isinstance(failed[39], BadRequestError)
    for item in items:
        if item.ok:
            assert item.result.request_id == "b-1"
            assert item.result.raw_response is not None


def test_reject_goes_with_the_batch_and_fails_items_alone() -> None:
    recorder = Recorder(batch_service)
    inputs = urls(3, _1="not_a_flower")
    with FlowersClient(GATEWAY, http_client=recorder.sync()) as client:
        items = client.classify_many(inputs, reject=True, batch_size=4)
    assert recorder.sent()["reject"] is True
    assert [item.ok for item in items] == [True, False, True]
    assert isinstance(items[1].error, NotAFlowerError)
    assert items[1].error.flower_score == 0.1


def test_default_is_one_image_per_request() -> None:
    recorder = Recorder(batch_service)
    with FlowersClient(GATEWAY, http_client=recorder.sync()) as client:
        items = client.classify_many(urls(3))
    assert len(recorder.requests) == 3
    assert all("images" not in json.loads(r.content) for r in recorder.requests)
    assert all(item.ok for item in items)


def test_the_rie_gets_one_image_per_invoke(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(batch_service)
    caplog.set_level("INFO", logger="flowers_client")
    with FlowersClient(RIE, http_client=recorder.sync()) as client:
        items = client.classify_many(urls(5), batch_size=16)
    assert len(recorder.requests) == 5
    assert all("images" not in json.loads(r.content) for r in recorder.requests)
    assert all(item.ok for item in items)
    assert "one image per invoke" in caplog.text


@pytest.mark.parametrize("batch_size", [0, 17, -1, True, 2.5])
def test_batch_size_is_checked(batch_size: Any) -> None:
    with (
        FlowersClient(GATEWAY, http_client=Recorder(batch_service).sync()) as client,
        pytest.raises(ValueError, match="batch_size"),
    ):
        client.iter_classify(urls(2), batch_size=batch_size)


def test_an_unreadable_input_fails_alone_and_is_not_sent(tmp_path: Path) -> None:
    recorder = Recorder(batch_service)
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"\xff\xd8 a photo")
    inputs: list[Any] = [str(photo), str(tmp_path / "missing.jpg"), b"", "https://example.com/x.jpg"]
    with FlowersClient(GATEWAY, http_client=recorder.sync()) as client:
        items = client.classify_many(inputs, batch_size=4)
    assert [item.ok for item in items] == [True, False, False, True]
    assert isinstance(items[1].error, InvalidInputError)
    assert isinstance(items[2].error, InvalidInputError)
    (sent,) = [json.loads(r.content) for r in recorder.requests]
    assert len(sent["images"]) == 2
    assert "image" in sent["images"][0]
    assert sent["images"][1] == {"url": "https://example.com/x.jpg"}


def test_large_images_are_split_across_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    from flowers_client import _base_client

    monkeypatch.setattr(_base_client, "MAX_BATCH_PAYLOAD", 3000)
    recorder = Recorder(batch_service)
    images = [bytes([i]) * 1000 for i in range(5)]  # about 1,350 bytes each as base64
    with FlowersClient(GATEWAY, http_client=recorder.sync()) as client:
        items = client.classify_many(images, batch_size=5)
    assert all(item.ok for item in items)
    assert [len(json.loads(r.content)["images"]) for r in recorder.requests] == [2, 2, 1]
    assert all(len(r.content) <= 3000 + 100 for r in recorder.requests)


def test_a_refused_batch_fails_each_of_its_images() -> None:
    reply = httpx.Response(413, json=error_body("payload_too_large"))
    with FlowersClient(GATEWAY, http_client=Recorder(reply).sync()) as client:
        items = client.classify_many(urls(3), batch_size=3)
    assert [item.index for item in items] == [0, 1, 2]
    assert all(isinstance(item.error, PayloadTooLargeError) for item in items)


def test_a_batch_is_retried_as_a_whole(waits: list[float]) -> None:
    recorder = Recorder(httpx.Response(503, json=error_body("internal_error")), batch_service)
    with FlowersClient(GATEWAY, http_client=recorder.sync()) as client:
        items = client.classify_many(urls(4, _2="upstream_error"), batch_size=4)
    assert len(recorder.requests) == 2
    assert len(waits) == 1
    assert [item.ok for item in items] == [True, True, False, True]  # the failed item is not retried alone


def test_an_unreachable_service_fails_every_image(waits: list[float]) -> None:
    recorder = Recorder(httpx.ConnectError("connection refused"))
    with FlowersClient(GATEWAY, http_client=recorder.sync(), max_retries=1) as client:
        items = client.classify_many(urls(5), batch_size=2)
    assert len(items) == 5
    assert all(isinstance(item.error, APIConnectionError) for item in items)
    assert len(recorder.requests) == 3 * 2  # three batches, each tried twice


@pytest.mark.parametrize(
    "reply",
    [
        {"results": [result_body()]},  # one entry for two images
        {"predictions": []},  # a single result: the service does not know batches
        {"results": "nope"},
    ],
)
def test_a_reply_that_is_not_a_batch_reply(reply: dict[str, Any]) -> None:
    with FlowersClient(GATEWAY, http_client=Recorder(httpx.Response(200, json=reply)).sync()) as client:
        items = client.classify_many(urls(2), batch_size=2)
    assert all(isinstance(item.error, ResponseValidationError) for item in items)


def test_a_bad_entry_fails_only_its_image() -> None:
    reply = {"results": [result_body(), {"predictions": "no"}, 42, {"status": 200}], "request_id": "b"}
    with FlowersClient(GATEWAY, http_client=Recorder(httpx.Response(200, json=reply)).sync()) as client:
        items = client.classify_many(urls(4), batch_size=4)
    assert [item.ok for item in items] == [True, False, False, False]
    assert all(isinstance(item.error, ResponseValidationError) for item in items[1:])


def test_iter_classify_reads_one_batch_per_free_slot() -> None:
    pulled: list[int] = []

    def inputs() -> Any:
        for i in range(64):
            pulled.append(i)
            yield f"https://example.com/{i}.jpg"

    with FlowersClient(GATEWAY, http_client=Recorder(batch_service).sync()) as client:
        stream = client.iter_classify(inputs(), batch_size=8, concurrency=2)
        first = next(stream)
        assert len(pulled) <= 8 * 3  # two batches in flight, then one more for the freed slot
        rest = list(stream)
    assert sorted([first.index] + [item.index for item in rest]) == list(range(64))


def test_async_client_batches() -> None:
    recorder = Recorder(batch_service)
    inputs = urls(20, _7="undecodable_image")

    async def go() -> list[BatchItem]:
        async with AsyncFlowersClient(GATEWAY, http_client=recorder.asynchronous()) as client:
            streamed = [item async for item in client.iter_classify(inputs, batch_size=MAX_BATCH_SIZE)]
            assert sorted(item.index for item in streamed) == list(range(20))
            return await client.classify_many(inputs, batch_size=6, concurrency=2)

    items = asyncio.run(go())
    check_in_order(items, inputs)
    assert [len(json.loads(r.content)["images"]) for r in recorder.requests][:2] == [16, 4]
    assert isinstance(items[7].error, UnprocessableImageError)
    assert sum(item.ok for item in items) == 19


def test_async_client_refuses_a_bad_batch_size_and_forces_one_on_the_rie() -> None:
    recorder = Recorder(batch_service)

    async def go() -> list[BatchItem]:
        async with AsyncFlowersClient(RIE, http_client=recorder.asynchronous()) as client:
            with pytest.raises(ValueError, match="batch_size"):
                client.iter_classify(urls(1), batch_size=MAX_BATCH_SIZE + 1)
            return await client.classify_many(urls(3), batch_size=MAX_BATCH_SIZE)

    items = asyncio.run(go())
    assert all(item.ok for item in items)
    assert len(recorder.requests) == 3


@pytest.mark.parametrize("value", ["0", "17", "x"])
def test_cli_batch_size_is_1_to_16(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["classify", "https://example.com/a.jpg", "--batch-size", value])
    assert exited.value.code == 2
    assert "--batch-size" in capsys.readouterr().err


@pytest.mark.parametrize("transport", ["gateway", "rie"])
def test_cli_batch_size_through_the_stand_in_service(
    transport: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fake_service import FakeService

    paths = []
    for i, text in enumerate(["a rose", "code=undecodable_image", "a tulip", "a daisy", "a lily"]):
        path = tmp_path / f"{i}.jpg"
        path.write_text(text)
        paths.append(str(path))
    with FakeService() as service:
        endpoint = service.url if transport == "gateway" else service.rie_url
        code = main(["classify", *paths, "--endpoint", endpoint, "--json", "--batch-size", "2"])
        bodies = [r["body"] for r in service.requests]
    assert code == 3  # some inputs failed
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["input"] for line in lines] == paths
    assert [line["ok"] for line in lines] == [True, False, True, True, True]
    assert lines[1]["error"]["code"] == "undecodable_image"
    if transport == "gateway":
        assert sorted(len(body["images"]) for body in bodies) == [1, 2, 2]  # sent concurrently
    else:
        assert len(bodies) == 5
        assert service.rie_overlaps == 0
