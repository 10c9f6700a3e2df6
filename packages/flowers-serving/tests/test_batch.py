"""Batch requests: the runner's guarantees (order, independence, one deadline, bounded downloads) with
stand-in fetches, then the real handler on mixed batches, the shape checks, the limits, the metrics
and the memory of sixteen heavy images in one request."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, REPO

from flowers_serving import handler as handler_module
from flowers_serving.batch import FETCH_CONCURRENCY, run_batch
from flowers_serving.errors import NotAFlower, UndecodableImage, UpstreamTimeout
from flowers_serving.events import MAX_BATCH_IMAGES, MAX_DIRECT_INVOKE_BYTES, BatchItem
from flowers_serving.handler import lambda_handler

FLOWERS = sorted((FIXTURES / "flowers").glob("*.jpg"))
HOSTILE = FIXTURES / "hostile"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def image_item(path: Path) -> dict[str, str]:
    return {"image": b64(path.read_bytes())}


def class_of(path: Path) -> int:
    return int(path.name.split("-", 1)[0])


# --- the runner, with stand-ins for the model and the network ---------------------------------------------------


def _answer(image: bytes) -> dict[str, Any]:
    if image.startswith(b"bad"):
        raise UndecodableImage("not an image")
    if image.startswith(b"boom"):
        raise RuntimeError("a bug")
    return {"predictions": [{"label": image.decode(), "class_id": 1, "score": 1.0}], "timings_ms": {"infer_ms": 1.0}}


def test_items_answer_in_input_order_and_fail_alone() -> None:
    items = (
        BatchItem(image_base64="a"),
        BatchItem(url="http://x/1"),
        BatchItem(image_base64="bad"),
        BatchItem(url="http://x/timeout"),
        BatchItem(image_base64="boom"),
        BatchItem(url="http://x/2"),
    )

    def fetch(url: str, seconds: float) -> bytes:
        if url.endswith("timeout"):
            raise UpstreamTimeout("too slow")
        if url.endswith("bug"):
            raise ValueError("a bug in the download")  # not a ServingError: still this item's alone
        return url.encode()

    items += (BatchItem(url="http://x/bug"), BatchItem(url="http://x/3"))
    outcomes = run_batch(items, answer=_answer, fetch=fetch, decode=str.encode, fetch_seconds=5, time_budget=30)
    assert [o.status for o in outcomes] == [200, 200, 422, 504, 500, 200, 500, 200]
    assert [o.code for o in outcomes] == [
        None, None, "undecodable_image", "upstream_timeout", "internal_error", None, "internal_error", None
    ]  # fmt: skip
    assert outcomes[1].body["predictions"][0]["label"] == "http://x/1"
    assert outcomes[5].body["predictions"][0]["label"] == "http://x/2"
    assert outcomes[2].body == {"error": {"code": "undecodable_image", "message": "not an image"}, "status": 422}
    assert "fetch_ms" in outcomes[1].body["timings_ms"]  # downloads report their time like a phase
    assert "fetch_ms" in outcomes[3].timings_ms  # failed ones too (for the FetchLatency metric)


def test_every_download_ends_by_the_batchs_one_deadline() -> None:
    """Sixteen hosts that never answer: each fetch gets only what is left of one shared deadline."""
    calls: list[tuple[float, float]] = []
    lock = threading.Lock()
    budget = 2.0  # one deadline each would end the fourth round of four downloads at 8 s

    def never_answers(url: str, seconds: float) -> bytes:
        ends = time.monotonic() + seconds
        with lock:
            calls.append((ends, seconds))
        time.sleep(max(0.0, seconds))  # the real Fetcher gives up after `seconds`
        raise UpstreamTimeout("no answer")

    started = time.monotonic()
    items = tuple(BatchItem(url=f"http://x/{i}") for i in range(MAX_BATCH_IMAGES))
    outcomes = run_batch(
        items, answer=_answer, fetch=never_answers, decode=str.encode, fetch_seconds=budget, time_budget=30
    )
    assert [o.code for o in outcomes] == ["upstream_timeout"] * MAX_BATCH_IMAGES
    assert len(calls) == MAX_BATCH_IMAGES
    for ends, seconds in calls:
        assert seconds <= budget
        assert ends <= started + budget + 0.5  # no fetch outlives the batch's deadline (0.5 s: a busy machine)


def test_downloads_are_bounded_and_images_do_not_pile_up() -> None:
    state = {"in_flight": 0, "max_in_flight": 0, "held": 0, "max_held": 0}
    lock = threading.Lock()

    def fetch(url: str, seconds: float) -> bytes:
        with lock:
            state["in_flight"] += 1
            state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
        time.sleep(0.01)
        with lock:
            state["in_flight"] -= 1
            state["held"] += 1
            state["max_held"] = max(state["max_held"], state["held"])
        return url.encode()

    def answer(image: bytes) -> dict[str, Any]:
        time.sleep(0.02)  # the model is slower than the downloads: they must wait, not pile up
        with lock:
            state["held"] -= 1
        return _answer(image)

    items = tuple(BatchItem(url=f"http://x/{i}") for i in range(MAX_BATCH_IMAGES))
    outcomes = run_batch(items, answer=answer, fetch=fetch, decode=str.encode, fetch_seconds=10, time_budget=30)
    assert [o.status for o in outcomes] == [200] * MAX_BATCH_IMAGES
    assert state["max_in_flight"] <= FETCH_CONCURRENCY
    assert state["max_held"] <= FETCH_CONCURRENCY + 1


def test_items_are_not_started_without_time_for_them() -> None:
    """Slow items (a hostile decode at a small CPU share): the ones that would outlast the budget answer 504."""

    def slow_answer(image: bytes) -> dict[str, Any]:
        time.sleep(0.4)
        return _answer(image)

    items = tuple(BatchItem(image_base64=f"img{i}") for i in range(MAX_BATCH_IMAGES))
    outcomes = run_batch(
        items, answer=slow_answer, fetch=lambda u, s: b"", decode=str.encode, fetch_seconds=5, time_budget=3.5
    )
    statuses = [o.status for o in outcomes]
    done = statuses.count(200)
    assert 1 <= done < MAX_BATCH_IMAGES
    assert statuses == [200] * done + [504] * (MAX_BATCH_IMAGES - done)  # the answered ones keep their answers
    assert outcomes[-1].code == "integration_timeout"
    assert "ran out of time" in outcomes[-1].body["error"]["message"]


def test_the_lambda_contexts_time_left_bounds_a_batch() -> None:
    class ShortContext:
        aws_request_id = "r"

        def get_remaining_time_in_millis(self) -> int:
            return 2500  # 1.5 s of budget: under the margin, no item starts

    body = lambda_handler({"images": [image_item(FLOWERS[0])] * 2}, ShortContext())
    assert [r["status"] for r in body["results"]] == [504, 504]
    assert body["results"][0]["error"]["code"] == "integration_timeout"


# --- the handler ---------------------------------------------------------------------------------------------------


def test_a_mixed_batch_answers_every_item_in_order() -> None:
    items = [
        image_item(FLOWERS[0]),
        {"image": "%%% not base64 %%%"},
        image_item(HOSTILE / "truncated.jpg"),
        image_item(HOSTILE / "not-an-image.jpg"),
        {"url": "http://169.254.169.254/latest/meta-data/"},
        {"url": "file:///etc/passwd"},
        image_item(FLOWERS[1]),
    ]
    body = lambda_handler({"images": items, "top_k": 2}, None)
    results = body["results"]
    assert len(results) == len(items)
    assert [r["status"] for r in results] == [200, 400, 422, 415, 400, 400, 200]
    codes = [r.get("error", {}).get("code") for r in results]
    assert codes == [
        None,
        "bad_request",
        "undecodable_image",
        "unsupported_media_type",
        "forbidden_url",
        "forbidden_url",
        None,
    ]
    assert results[0]["predictions"][0]["class_id"] == class_of(FLOWERS[0])
    assert results[6]["predictions"][0]["class_id"] == class_of(FLOWERS[1])
    assert all(len(r["predictions"]) == 2 for r in results if r["status"] == 200)
    assert {r["request_id"] for r in results} == {body["request_id"]}


def test_a_batch_item_gets_the_same_answer_as_the_single_request() -> None:
    for path in [FLOWERS[2], HOSTILE / "truncated.jpg", HOSTILE / "bomb.png"]:
        single = lambda_handler({**image_item(path), "top_k": 3}, None)
        (item,) = lambda_handler({"images": [image_item(path)], "top_k": 3}, None)["results"]
        if "error" in single:
            assert item["error"] == single["error"]
        else:
            assert item["predictions"] == single["predictions"]
            assert item.get("is_flower") == single.get("is_flower")


def test_reject_applies_to_each_item(monkeypatch: pytest.MonkeyPatch) -> None:
    real = handler_module._result_body

    def not_a_flower_for_the_lotus(result: Any) -> dict[str, Any]:
        body = real(result)
        if body["predictions"][0]["class_id"] == 78:
            body["is_flower"], body["flower_score"] = False, 0.1
        return body

    monkeypatch.setattr(handler_module, "_result_body", not_a_flower_for_the_lotus)
    paths = FLOWERS  # 013, 054, 077, 078 (the lotus)
    body = lambda_handler({"images": [image_item(p) for p in paths], "reject": True, "top_k": 2}, None)
    statuses = [r["status"] for r in body["results"]]
    assert statuses == [200, 200, 200, 422]
    rejected = body["results"][3]["error"]
    assert rejected["code"] == NotAFlower.code
    assert rejected["flower_score"] == 0.1
    assert len(rejected["predictions"]) == 2
    # Without reject the same item is a 200 that says so.
    body = lambda_handler({"images": [image_item(paths[3])]}, None)
    assert body["results"][0]["is_flower"] is False


def test_url_items_are_fetched(upstream: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from flowers_serving.fetch import Fetcher, FetchSettings

    # The slow hosts fail by the read timeout; the total is only a guard (a loaded machine is slow to redirect).
    fetcher = Fetcher(FetchSettings(allow_loopback=True, connect_timeout=2, read_timeout=2, total_timeout=60))
    monkeypatch.setattr(handler_module, "FETCHER", fetcher)
    items = [
        {"url": upstream.url("/flower.jpg")},
        {"url": upstream.url("/missing")},
        {"url": upstream.url("/slow")},
        image_item(FLOWERS[0]),
        {"url": upstream.url("/stall-headers")},
        {"url": upstream.url("/redirect")},
    ]
    body = lambda_handler({"images": items, "top_k": 1}, None)
    codes = [r.get("error", {}).get("code") for r in body["results"]]
    assert codes == [None, "upstream_error", "upstream_timeout", None, "upstream_timeout", None]
    assert body["results"][0]["predictions"][0]["class_id"] == 54
    assert body["results"][5]["predictions"][0]["class_id"] == 54
    assert "fetch_ms" in body["results"][0]["timings_ms"]


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        ({"images": []}, "'images' must hold 1 to 16 items"),
        ({"images": [image_item(FLOWERS[0])] * 17}, "'images' must hold 1 to 16 items; it holds 17"),
        ({"images": {"url": "http://x"}}, "'images' must be a list"),
        ({"images": "http://x"}, "'images' must be a list"),
        ({"images": None}, "'images' must be a list"),
        ({"images": ["http://x/a.jpg"]}, "'images[0]'"),
        ({"images": [{"url": "http://x/a.jpg"}, {}]}, "'images[1]'"),
        ({"images": [{"url": "http://x/a.jpg", "image": "AAAA"}]}, "'images[0]'"),
        ({"images": [{"url": 42}]}, "'images[0].url'"),
        ({"images": [{"url": ""}]}, "'images[0].url'"),
        ({"images": [{"image": ["AAAA"]}]}, "'images[0].image'"),
        ({"images": [{"image": "AAAA", "top_k": 3}]}, "'images[0]' may only hold"),
        ({"images": [{"url": "http://x/a.jpg"}], "url": "http://x/b.jpg"}, "not both"),
        ({"images": [{"url": "http://x/a.jpg"}], "top_k": 0}, "top_k"),
        ({"images": [{"url": "http://x/a.jpg"}], "reject": "yes"}, "'reject'"),
    ],
)
def test_a_batch_of_the_wrong_shape_is_one_400_naming_the_field(request_body: dict[str, Any], field: str) -> None:
    body = lambda_handler(request_body, None)
    assert "results" not in body
    assert body["error"]["code"] == "bad_request"
    assert field in body["error"]["message"]
    reply = lambda_handler(_rest(request_body), None)
    assert reply["statusCode"] == 400
    assert field in json.loads(reply["body"])["error"]["message"]


def _rest(payload: dict[str, Any], query: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "resource": "/predict",
        "path": "/predict",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "queryStringParameters": query,
        "requestContext": {"requestId": "apigw", "stage": "prod"},
        "body": json.dumps(payload),
        "isBase64Encoded": False,
    }


def test_a_batch_through_the_proxy_is_200_with_failed_items_and_takes_query_options() -> None:
    payload = {"images": [image_item(FLOWERS[0]), image_item(HOSTILE / "truncated.jpg")]}
    reply = lambda_handler(_rest(payload, {"top_k": "3"}), None)
    assert reply["statusCode"] == 200
    body = json.loads(reply["body"])
    assert [r["status"] for r in body["results"]] == [200, 422]
    assert len(body["results"][0]["predictions"]) == 3
    assert body["results"][0]["request_id"] == reply["headers"]["X-Request-Id"]


def test_a_direct_batch_over_lambdas_payload_limit_is_413() -> None:
    chunk = "A" * (MAX_DIRECT_INVOKE_BYTES // 4 + 4)
    body = lambda_handler({"images": [{"image": chunk}] * 4}, None)
    assert body["error"]["code"] == "payload_too_large"
    assert "6,291,456" in body["error"]["message"]


def test_an_item_over_the_image_cap_is_that_items_413(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handler_module, "MAX_IMAGE_BYTES", 1000)
    body = lambda_handler({"images": [image_item(FLOWERS[0]), {"image": b64(b"\xff" * 600)}]}, None)
    assert [r.get("error", {}).get("code") for r in body["results"]] == ["payload_too_large", "unsupported_media_type"]
    assert body["results"][0]["status"] == 413


def test_one_log_line_per_batch(capsys: pytest.CaptureFixture[str]) -> None:
    lambda_handler({"images": [image_item(FLOWERS[0]), {"image": "%%%"}]}, None)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (line,) = [line for line in lines if line.get("message") == "request"]
    assert line["input_kind"] == "batch"
    assert line["images"] == 2
    assert line["item_errors"] == 1
    assert line["item_error_codes"] == ["bad_request"]


def test_metrics_count_each_item(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "flowers")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "flowers-test")
    items = [
        image_item(FLOWERS[0]),
        image_item(FLOWERS[1]),
        {"image": "%%%"},
        image_item(HOSTILE / "truncated.jpg"),
        image_item(HOSTILE / "truncated.jpg"),
    ]
    lambda_handler({"images": items}, None)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    emf = [line for line in lines if "_aws" in line]
    request = next(line for line in emf if "Requests" in line)
    assert request["Requests"] == [1.0]
    assert request["Images"] == [5.0]
    assert request["ClientError"] == [0.0, 0.0, 1.0, 1.0, 1.0]  # one sample per image
    assert request["ServerError"] == [0.0] * 5
    assert len(request["InferenceLatency"]) == 2
    assert len(request["Latency"]) == 1  # the request's, once
    errors = {line["code"]: line["Errors"] for line in emf if "Errors" in line}
    assert errors == {"bad_request": [1.0], "undecodable_image": [2.0]}


# --- memory ----------------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
@pytest.mark.skipif(os.environ.get("FLOWERS_RUNTIME") == "tflite-runtime", reason="checked with LiteRT")
@pytest.mark.timeout(1200)
def test_sixteen_heavy_images_in_one_batch_fit_in_512_mb(tmp_path: Path) -> None:
    """The heaviest valid hostile images, sixteen to a batch: one decoded image at a time, never sixteen."""
    sys.path.insert(0, str(REPO / "tests"))
    from hostile import CLASSES

    heavy = [case for case in CLASSES if case.code is None][:MAX_BATCH_IMAGES]
    paths = []
    for case in heavy:
        path = tmp_path / case.name
        path.write_bytes(case.make())
        paths.append(str(path))
    probe = Path(__file__).with_name("rss_probe.py")
    result = subprocess.run(
        [sys.executable, str(probe), "--batch", str(MAX_BATCH_IMAGES), *paths],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["code"] for line in lines] == [None] * len(heavy), lines
    assert max(line["peak_rss_mb"] for line in lines) <= 512, lines
