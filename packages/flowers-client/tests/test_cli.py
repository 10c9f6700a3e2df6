from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import responses
from conftest import GATEWAY, error_body, result_body

from flowers_client import __version__
from flowers_client.cli import main

JPEG = b"\xff\xd8\xff\xe0fake"


@pytest.fixture
def photos(tmp_path: Path) -> list[str]:
    paths = []
    for name in ("a.jpg", "b.jpg"):
        path = tmp_path / name
        path.write_bytes(JPEG)
        paths.append(str(path))
    return paths


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_table_output(photos: list[str], mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str]) -> None:
    mocked.post(GATEWAY, json=result_body())
    assert main(["classify", *photos, "--endpoint", GATEWAY, "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "sunflower" in out
    assert "0.900" in out
    assert "barbeton daisy" not in out  # --top-k 2


def test_json_lines(photos: list[str], mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str]) -> None:
    mocked.post(GATEWAY, json=result_body())
    assert main(["classify", *photos, "--endpoint", GATEWAY, "--json", "--min-score", "0.04"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["input"] for line in lines] == photos
    assert [p["label"] for p in lines[0]["predictions"]] == ["sunflower", "daisy"]


def test_stdin_inputs(
    photos: list[str],
    mocked: responses.RequestsMock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mocked.post(GATEWAY, json=result_body())
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(photos) + "\n\n"))
    assert main(["classify", "-", "--endpoint", GATEWAY, "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_some_inputs_failed_exits_3(
    photos: list[str], mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    mocked.post(GATEWAY, json=result_body())
    code = main(["classify", photos[0], "missing.jpg", "--endpoint", GATEWAY, "--json", "--concurrency", "1"])
    assert code == 3
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[1]["ok"] is False
    assert lines[1]["error"]["type"] == "InvalidInputError"


def test_all_failed_exits_1(
    photos: list[str], mocked: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    mocked.post(GATEWAY, json=error_body("undecodable_image"), status=422)
    assert main(["classify", *photos, "--endpoint", GATEWAY]) == 1
    out = capsys.readouterr().out
    assert "undecodable_image" in out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["classify"],
        ["classify", "x.jpg", "--top-k", "0"],
        ["classify", "x.jpg", "--top-k", "103"],
        ["classify", "x.jpg", "--min-score", "2"],
        ["classify", "x.jpg", "--concurrency", "0"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2


def test_bad_endpoint_exits_2(photos: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", photos[0], "--endpoint", "not-a-url"]) == 2
    assert "endpoint" in capsys.readouterr().err
