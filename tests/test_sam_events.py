"""The local gateway's events against AWS SAM's own sample events (from the aws-sam-cli wheel)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from contract.cases import FLOWERS

from flowers_serving.local.gateway import build_proxy_event

#: Set by `nox -s contract`, which extracts the samples from the aws-sam-cli wheel beside the RIE binary.
EVENTS = Path(os.environ["FLOWERS_SAM_EVENTS"]) if os.environ.get("FLOWERS_SAM_EVENTS") else None


def sam_event(name: str, **values: str) -> dict[str, Any]:
    """A SAM sample event with its {{{placeholders}}} filled in."""
    assert EVENTS is not None, "nox -s contract sets FLOWERS_SAM_EVENTS"
    text = (EVENTS / name).read_text()
    defaults = {
        "body": "",
        "resource": "/predict",
        "path": "predict",
        "method": "POST",
        "account_id": "123456789012",
        "stage": "prod",
        "dns_suffix": "amazonaws.com",
        "querystringparameters": "",
    }
    for key, value in {**defaults, **values}.items():
        text = text.replace("{{{" + key + "}}}", value)
    event: dict[str, Any] = json.loads(text)
    return event


def test_our_rest_event_has_the_shape_of_sams() -> None:
    ours = build_proxy_event("POST", "/predict?top_k=3", {"Content-Type": "application/json"}, b"{}", request_id="r")
    theirs = sam_event("AwsProxy.json")
    assert set(ours) == set(theirs)
    assert set(ours["requestContext"]) == set(theirs["requestContext"])
    assert set(ours["requestContext"]["identity"]) == set(theirs["requestContext"]["identity"])
    assert ours["queryStringParameters"] == {"top_k": "3"}
    assert ours["multiValueQueryStringParameters"] == {"top_k": ["3"]}


def test_handler_accepts_sams_rest_event_with_a_binary_body() -> None:
    from flowers_serving.handler import lambda_handler

    event = sam_event("AwsProxy.json", body=base64.b64encode(FLOWERS[0].read_bytes()).decode())
    event["headers"]["Content-Type"] = "image/jpeg"
    event["queryStringParameters"] = {"top_k": "2"}
    reply = lambda_handler(event, None)
    assert reply["statusCode"] == 200, reply
    assert len(json.loads(reply["body"])["predictions"]) == 2


def test_handler_accepts_sams_http_api_event_with_a_json_body() -> None:
    from flowers_serving.handler import lambda_handler

    body = json.dumps({"image": base64.b64encode(FLOWERS[0].read_bytes()).decode(), "top_k": 1})
    event = sam_event("HttpApi.json", body=base64.b64encode(body.encode()).decode())
    event["headers"]["content-type"] = "application/json"
    reply = lambda_handler(event, None)
    assert reply["statusCode"] == 200, reply
    assert json.loads(reply["body"])["predictions"][0]["class_id"] == int(FLOWERS[0].name.split("-")[0])
