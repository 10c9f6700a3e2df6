"""The `flowers` CLI in-process against the fake service on loopback (real HTTP)."""

from __future__ import annotations

import io
import json
import re
import socket
from pathlib import Path

import pytest
from fake_service import FakeService

from flowers_client import __version__
from flowers_client.cli import main

SUMMARY = re.compile(r"^(\d+) classified, (\d+) failed in \d+\.\d s", re.MULTILINE)
BOX_DRAWING = re.compile(r"[\u2500-\u257f]")


def photo(tmp_path: Path, name: str, content: str = "a flower") -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode())
    return str(path)


@pytest.fixture
def photos(tmp_path: Path) -> list[str]:
    return [photo(tmp_path, f"{name}.jpg", f"photo {name}") for name in ("a", "b", "c")]


def json_lines(text: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in text.splitlines()]
    assert all(isinstance(line, dict) for line in lines)
    return lines


def summary(err: str) -> tuple[int, int]:
    match = SUMMARY.search(err)
    assert match, err
    return int(match.group(1)), int(match.group(2))


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_no_arguments_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: flowers")
    assert "classify" in out


def test_table_is_plain_when_piped(photos: list[str], service: FakeService, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", *photos, "--endpoint", service.url, "--top-k", "2"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == ["image", "#", "species", "score", "class"]
    assert len(lines) == 1 + 3 * 2  # header, then two predictions per image
    assert lines[1].startswith(photos[0])
    assert "0.900" in lines[1]
    assert not BOX_DRAWING.search(out)
    assert "\x1b[" not in out
    assert summary(err) == (3, 0)


def test_json_lines_in_input_order(tmp_path: Path, service: FakeService, capsys: pytest.CaptureFixture[str]) -> None:
    # The first input is the slowest: it is still printed first.
    images = [photo(tmp_path, "0.jpg", "sleep=0.5 slow")] + [
        photo(tmp_path, f"{i}.jpg", f"fast {i}") for i in range(1, 6)
    ]
    assert main(["classify", *images, "--endpoint", service.url, "--json", "--min-score", "0.04"]) == 0
    lines = json_lines(capsys.readouterr().out)
    assert [line["input"] for line in lines] == images
    assert [line["index"] for line in lines] == list(range(6))
    first = lines[0]
    assert first["ok"] is True
    assert first["is_flower"] is True
    assert first["flower_score"] == 0.97
    assert [p["score"] for p in first["predictions"]] == [0.9, 0.05]  # type: ignore[index]
    assert {"model", "model_version", "request_id"} <= set(first)


def test_stdin_and_directories(
    tmp_path: Path, service: FakeService, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "album"
    nested = [photo(folder, "b.jpg"), photo(folder, "a.png"), photo(folder, "sub/c.jpeg"), photo(folder, "notes.txt")]
    loose = photo(tmp_path, "loose.jpg")
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{loose}\n\n"))
    assert main(["classify", str(folder), "-", "--endpoint", service.url, "--json"]) == 0
    inputs = [line["input"] for line in json_lines(capsys.readouterr().out)]
    assert inputs == [nested[1], nested[0], nested[2], loose]


def test_some_inputs_failed_exits_3_with_one_short_line_each(
    tmp_path: Path, service: FakeService, capsys: pytest.CaptureFixture[str]
) -> None:
    good = photo(tmp_path, "good.jpg")
    bad = photo(tmp_path, "bad.jpg", "code=undecodable_image")
    assert main(["classify", good, bad, str(tmp_path / "missing.jpg"), "--endpoint", service.url]) == 3
    out, err = capsys.readouterr()
    rows = [line for line in out.splitlines() if "error" in line]
    assert len(rows) == 2
    assert "error: undecodable_image: fake undecodable_image" in rows[0]
    assert "error: InvalidInputError" in rows[1]
    assert "no such file" in rows[1]
    assert summary(err) == (1, 2)


def test_failed_items_are_valid_json_objects(
    tmp_path: Path, service: FakeService, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = photo(tmp_path, "bad.jpg", "code=unsupported_media_type")
    assert main(["classify", bad, str(tmp_path / "missing.jpg"), "--endpoint", service.url, "--json"]) == 1
    served, missing = json_lines(capsys.readouterr().out)
    assert served == {
        "index": 0,
        "input": bad,
        "ok": False,
        "error": {
            "type": "UnsupportedMediaTypeError",
            "code": "unsupported_media_type",
            "status": 415,
            "message": "fake unsupported_media_type",
            "request_id": served["error"]["request_id"],  # type: ignore[index]
        },
    }
    assert missing["error"]["type"] == "InvalidInputError"  # type: ignore[index]
    assert missing["error"]["status"] is None  # type: ignore[index]


def test_not_a_flower_is_said_plainly_and_reject_exits_3(
    tmp_path: Path, service: FakeService, capsys: pytest.CaptureFixture[str]
) -> None:
    moon = photo(tmp_path, "moon.jpg", "notflower")
    rose = photo(tmp_path, "rose.jpg")
    assert main(["classify", moon, rose, "--endpoint", service.url]) == 0
    out, err = capsys.readouterr()
    assert re.search(r"moon\.jpg\s+-\s+not a flower \(flower score 0\.040; closest: ", out)
    assert "1 not a flower" in err

    assert main(["classify", moon, rose, "--endpoint", service.url, "--json"]) == 0
    lines = json_lines(capsys.readouterr().out)
    assert (lines[0]["is_flower"], lines[0]["flower_score"]) == (False, 0.04)

    assert main(["classify", moon, rose, "--endpoint", service.url, "--reject"]) == 3
    out, err = capsys.readouterr()
    assert "not a flower (rejected; flower score 0.040" in out
    assert "1 rejected as not a flower" in err
    assert service.requests[-1]["body"]["reject"] is True

    assert main(["classify", moon, "--endpoint", service.url, "--reject", "--json"]) == 3
    (line,) = json_lines(capsys.readouterr().out)
    assert line["error"]["code"] == "not_a_flower"  # type: ignore[index]
    assert line["error"]["flower_score"] == 0.04  # type: ignore[index]


def test_a_dead_endpoint_fails_fast_with_a_hint(photos: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/predict"
    assert main(["classify", *photos * 5, "--endpoint", dead, "--max-retries", "0", "--concurrency", "1"]) == 1
    out, err = capsys.readouterr()
    assert "connection refused" in out
    assert len(out.splitlines()) <= 2  # header and the first failure: the rest is not sent
    assert "nox -s serve" in err
    assert "--endpoint / FLOWERS_ENDPOINT" in err
    assert "Traceback" not in err
    assert summary(err) == (0, 1)
    assert "not sent" in err


def test_output_file_and_resume(
    photos: list[str], tmp_path: Path, service: FakeService, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "results.jsonl"
    flaky = photo(tmp_path, "flaky.jpg", "flaky=1")  # fails once (503, no retries), then works
    args = ["--endpoint", service.url, "-o", str(out_file), "--max-retries", "0"]
    assert main(["classify", photos[0], flaky, *args]) == 3
    first_run = json_lines(out_file.read_text())
    assert [(line["input"], line["ok"]) for line in first_run] == [(photos[0], True), (flaky, False)] or [
        (line["input"], line["ok"]) for line in reversed(first_run)
    ] == [(photos[0], True), (flaky, False)]
    with out_file.open("a") as handle:
        handle.write('{"input": "cut short by a hard ki')  # what a kill -9 leaves
    capsys.readouterr()

    sent_before = len(service.requests)
    assert main(["classify", *photos, flaky, *args, "--resume", "--json"]) == 0
    out, err = capsys.readouterr()
    assert [line["input"] for line in json_lines(out)] == [photos[1], photos[2], flaky]
    assert [line["index"] for line in json_lines(out)] == [1, 2, 3]  # positions in the whole input list
    assert len(service.requests) - sent_before == 3
    assert "1 skipped (already in" in err
    assert "1 unreadable line" in err
    text = out_file.read_text()
    records = [json.loads(line) for line in text.splitlines() if line.startswith('{"index"')]
    assert {r["input"] for r in records if r["ok"]} == {*photos, flaky}

    assert main(["classify", *photos, flaky, *args, "--resume"]) == 0
    assert "0 classified, 0 failed" in capsys.readouterr().err


def test_resume_needs_an_output_file(photos: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", *photos, "--resume"]) == 2
    assert "--output" in capsys.readouterr().err


def test_api_key_option_and_environment(
    photos: list[str], service: FakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["classify", photos[0], "--endpoint", service.url, "--api-key", "from-flag"]) == 0
    monkeypatch.setenv("FLOWERS_API_KEY", "from-env")
    monkeypatch.setenv("FLOWERS_ENDPOINT", service.url)
    assert main(["classify", photos[0]]) == 0
    headers = [{k.lower(): v for k, v in r["headers"].items()} for r in service.requests]
    assert [h["x-api-key"] for h in headers] == ["from-flag", "from-env"]
    assert all(h["user-agent"] == f"flowers-client/{__version__}" for h in headers)


def test_default_concurrency_through_the_rie_sends_one_invoke_at_a_time(
    tmp_path: Path, service: FakeService, capsys: pytest.CaptureFixture[str]
) -> None:
    images = [photo(tmp_path, f"{i}.jpg", f"sleep=0.01 {i}") for i in range(16)]
    assert main(["classify", *images, "--endpoint", service.rie_url, "--json"]) == 0
    assert all(line["ok"] for line in json_lines(capsys.readouterr().out))
    assert service.rie_overlaps == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["classify"],
        ["classify", "x.jpg", "--top-k", "0"],
        ["classify", "x.jpg", "--top-k", "103"],
        ["classify", "x.jpg", "--min-score", "2"],
        ["classify", "x.jpg", "--concurrency", "0"],
        ["classify", "x.jpg", "--deadline", "0"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    assert code == 2


def test_bad_endpoint_exits_2(photos: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", photos[0], "--endpoint", "not-a-url"]) == 2
    assert "endpoint" in capsys.readouterr().err
