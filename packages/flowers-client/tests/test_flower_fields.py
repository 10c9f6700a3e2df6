"""``is_flower``, ``flower_score`` and ``reject`` as the contract schema defines them, on both wires,
sync and async: replies built to the schema (and checked against it) through httpx's MockTransport.

The shipped model may not send the fields yet; the client must read them when present and
accept their absence. The real stack's side of this is in ``tests/test_contract_client.py``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from conftest import GATEWAY, RIE, Recorder
from fake_service import result_body as fake_result

import flowers_client
from flowers_client import BATCH_ITEM, AsyncFlowersClient, FlowersClient, NotAFlowerError

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[3] / "tests" / "contract" / "api.schema.json").read_text(encoding="utf-8")
)
PHOTO = b"\xff\xd8\xff\xe0 a photo"
GUESSES = [
    {"label": "giant white arum lily", "class_id": 20, "score": 0.41},
    {"label": "moon orchid", "class_id": 7, "score": 0.22},
]


def valid(kind: str, body: Any) -> Any:
    """``body``, once the contract schema says it is a valid ``kind``."""
    jsonschema.validate(body, {"$ref": f"#/$defs/{kind}", "$defs": SCHEMA["$defs"]})
    return body


def result(**fields: Any) -> dict[str, Any]:
    base = {"predictions": GUESSES, "model": "flowers", "model_version": "2.0.0", "request_id": "r-1"}
    return valid("result", {**base, **fields})


NOT_A_FLOWER = valid(
    "error",
    {
        "error": {
            "code": "not_a_flower",
            "message": "the photo shows none of the 102 species",
            "flower_score": 0.07,
            "predictions": GUESSES,
        },
        "request_id": "r-2",
    },
)


def reply(endpoint: str, body: dict[str, Any], status: int = 200) -> httpx.Response:
    """What each wire sends: the status on API Gateway, always 200 from a direct invoke."""
    return httpx.Response(status if endpoint == GATEWAY else 200, json=body)


def classify(endpoint: str, recorder: Recorder, side: str, **options: Any) -> flowers_client.ClassifyResult:
    if side == "sync":
        with FlowersClient(endpoint, max_retries=3, http_client=recorder.sync()) as client:
            return client.classify(PHOTO, **options)

    async def go() -> flowers_client.ClassifyResult:
        async with AsyncFlowersClient(endpoint, max_retries=3, http_client=recorder.asynchronous()) as client:
            return await client.classify(PHOTO, **options)

    return asyncio.run(go())


WIRES = pytest.mark.parametrize("endpoint", [GATEWAY, RIE], ids=["gateway", "rie"])
SIDES = pytest.mark.parametrize("side", ["sync", "async"])


@WIRES
@SIDES
@pytest.mark.parametrize(("is_flower", "score"), [(True, 0.93), (False, 0.12), (None, None)])
def test_results_carry_the_fields_or_none(
    endpoint: str, side: str, is_flower: bool | None, score: float | None
) -> None:
    fields = {} if is_flower is None else {"is_flower": is_flower, "flower_score": score}
    got = classify(endpoint, Recorder(reply(endpoint, result(**fields))), side)
    assert (got.is_flower, got.flower_score) == (is_flower, score)
    assert got.best.label == "giant white arum lily"  # the top-k stays as it is


@WIRES
@SIDES
def test_reject_is_sent_as_the_schema_says_and_not_a_flower_is_an_error(endpoint: str, side: str) -> None:
    recorder = Recorder(reply(endpoint, NOT_A_FLOWER, 422))
    with pytest.raises(NotAFlowerError) as caught:
        classify(endpoint, recorder, side, reject=True)
    assert len(recorder.requests) == 1  # the same photo gets the same answer: not retried
    assert valid("request", recorder.sent())["reject"] is True
    error = caught.value
    assert (error.status_code, error.code, error.request_id) == (422, "not_a_flower", "r-2")
    assert error.flower_score == 0.07
    assert [p.label for p in error.predictions] == ["giant white arum lily", "moon orchid"]
    assert isinstance(error, flowers_client.UnprocessableImageError)


@WIRES
def test_without_reject_the_request_carries_no_reject(endpoint: str) -> None:
    recorder = Recorder(reply(endpoint, result(is_flower=False, flower_score=0.2)))
    classify(endpoint, recorder, "sync")
    assert "reject" not in valid("request", recorder.sent())


def test_a_rejected_batch_item_keeps_score_and_guesses_through_json() -> None:
    recorder = Recorder(reply(GATEWAY, NOT_A_FLOWER, 422))
    with FlowersClient(GATEWAY, http_client=recorder.sync()) as client:
        (item,) = client.classify_many([PHOTO], reject=True)
    assert not item.ok
    again = BATCH_ITEM.validate_json(item.model_dump_json())
    assert isinstance(again.error, NotAFlowerError)
    assert again.error.flower_score == 0.07
    assert [p.class_id for p in again.error.predictions] == [20, 7]


@pytest.mark.parametrize("is_flower", [True, False])
def test_the_stand_in_service_answers_to_the_schema(is_flower: bool) -> None:
    """The CLI and README tests use the stand-in service: its replies must be the contract's."""
    valid("result", {**fake_result("x", 5, is_flower=is_flower), "request_id": "r"})
