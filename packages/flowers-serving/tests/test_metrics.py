"""flowers_serving.metrics: the EMF lines Powertools prints, read back as CloudWatch would read them."""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import pytest

from flowers_serving import metrics


@pytest.fixture
def emf_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "flowers")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "flowers-test")
    monkeypatch.setitem(metrics._state, "cold", False)
    monkeypatch.setitem(metrics._state, "failed", False)


def _emf(out: str) -> list[dict[str, Any]]:
    """Every stdout line must be one JSON object; return those that carry EMF metrics."""
    lines = [json.loads(line) for line in out.splitlines()]
    return [line for line in lines if "_aws" in line]


def _metric_names(line: dict[str, Any]) -> set[str]:
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    return {m["Name"] for m in directive["Metrics"]}


@pytest.mark.usefixtures("emf_on")
def test_one_line_per_successful_request(capsys: pytest.CaptureFixture[str]) -> None:
    metrics.record(200, None, {"decode_ms": 0.7, "preprocess_ms": 0.4, "infer_ms": 4.5, "total_ms": 6.1}, True)
    (line,) = _emf(capsys.readouterr().out)
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "flowers"
    assert directive["Dimensions"] == [["service"]]
    assert line["service"] == "flowers-test"
    assert _metric_names(line) == {
        "Requests",
        "ServerError",
        "ClientError",
        "ColdStart",
        "DecodeLatency",
        "PreprocessLatency",
        "InferenceLatency",
        "Latency",
        "NotFlower",
        "SecondLook",
        "Images",
    }
    assert line["Requests"] == [1.0]
    assert line["ServerError"] == [0.0]
    assert line["ClientError"] == [0.0]
    assert line["InferenceLatency"] == [4.5]
    assert line["Latency"] == [6.1]
    assert line["NotFlower"] == [0.0]
    assert line["SecondLook"] == [0.0]  # one inference: no second_look_ms
    assert line["Images"] == [1.0]  # a single request is one image
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units["Latency"] == "Milliseconds"
    assert units["Requests"] == "Count"


@pytest.mark.usefixtures("emf_on")
def test_a_second_look_is_counted(capsys: pytest.CaptureFixture[str]) -> None:
    timings = {"decode_ms": 0.7, "preprocess_ms": 0.4, "infer_ms": 4.5, "second_look_ms": 4.4, "total_ms": 10.5}
    metrics.record(200, None, timings, True)
    (line,) = _emf(capsys.readouterr().out)
    assert line["SecondLook"] == [1.0]
    metrics.record(502, "upstream_error", {"fetch_ms": 3000.0, "total_ms": 3001.0}, None)
    request, _ = _emf(capsys.readouterr().out)
    assert "SecondLook" not in _metric_names(request)  # nothing classified, no sample


@pytest.mark.usefixtures("emf_on")
def test_errors_carry_their_code_as_a_dimension(capsys: pytest.CaptureFixture[str]) -> None:
    metrics.record(502, "upstream_error", {"fetch_ms": 3000.0, "total_ms": 3001.0}, None)
    request, error = _emf(capsys.readouterr().out)
    assert request["ServerError"] == [1.0]
    assert request["FetchLatency"] == [3000.0]
    assert "NotFlower" not in _metric_names(request)  # no verdict, no rate sample
    assert error["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["code", "service"]]
    assert error["code"] == "upstream_error"
    assert error["Errors"] == [1.0]
    metrics.record(400, "bad_request", None, None)
    request, error = _emf(capsys.readouterr().out)
    assert request["ClientError"] == [1.0]
    assert request["ServerError"] == [0.0]
    assert error["code"] == "bad_request"


@pytest.mark.usefixtures("emf_on")
def test_a_caller_cannot_mint_dimensions(capsys: pytest.CaptureFixture[str]) -> None:
    metrics.record(500, "Weird Code!\n{}", {"total_ms": 1.0}, None)
    _, error = _emf(capsys.readouterr().out)
    assert error["code"] == "other"


@pytest.mark.usefixtures("emf_on")
def test_not_a_flower_and_cold_start(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(metrics._state, "cold", True)
    metrics.record(200, None, {"total_ms": 5.0}, False)
    metrics.record(200, None, {"total_ms": 5.0, "bogus_ms": 1.0, "decode_ms": -1.0}, False)
    first, second = _emf(capsys.readouterr().out)
    assert first["NotFlower"] == [1.0]
    assert first["ColdStart"] == [1.0]
    assert second["ColdStart"] == [0.0]
    assert "DecodeLatency" not in _metric_names(second)  # negative or unknown timings are not metrics


def test_off_without_the_namespace(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    assert not metrics.enabled()
    metrics.record(200, None, {"total_ms": 5.0}, True)
    assert capsys.readouterr().out == ""


def test_a_no_op_without_powertools(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, emf_on: None
) -> None:
    monkeypatch.setitem(sys.modules, "aws_lambda_powertools.metrics", None)  # import fails as if not installed
    metrics._powertools.cache_clear()
    try:
        assert not metrics.enabled()
        metrics.record(500, "internal_error", {"total_ms": 5.0}, None)
        assert capsys.readouterr().out == ""
    finally:
        monkeypatch.undo()
        metrics._powertools.cache_clear()
    assert metrics._powertools() is not None


@pytest.mark.usefixtures("emf_on")
def test_a_metrics_failure_never_fails_the_request(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("emf broke")

    monkeypatch.setattr(metrics, "_emit", broken)
    from flowers_serving.logs import configure_logging

    configure_logging()
    metrics.record(200, None, {"total_ms": 1.0}, None)
    metrics.record(200, None, {"total_ms": 1.0}, None)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 1  # logged once, as one JSON line
    assert "emf broke" in lines[0]["exception"]


@pytest.mark.usefixtures("emf_on")
def test_the_handler_emits_the_phases_of_a_real_classification(
    flower_bytes: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    from flowers_serving.handler import lambda_handler

    capsys.readouterr()
    lambda_handler({"image": base64.b64encode(flower_bytes).decode()}, None)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]  # every line one JSON object
    (emf,) = [line for line in lines if "_aws" in line]
    assert {"DecodeLatency", "PreprocessLatency", "InferenceLatency", "Latency"} <= _metric_names(emf)
    assert emf["InferenceLatency"][0] > 0
    assert emf["Latency"][0] >= emf["InferenceLatency"][0]
    assert emf["ServerError"] == [0.0]
    assert any(line.get("message") == "request" for line in lines)
    lambda_handler({"image": base64.b64encode(b"not an image").decode()}, None)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    codes = [line["code"] for line in lines if "Errors" in line]
    assert codes == ["unsupported_media_type"]
