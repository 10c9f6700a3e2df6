"""The evaluate command as a person runs it: the shipped model on the tiny data set, where reports go, missing data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowers_model import evaluate
from flowers_model.data import PREPARED_DATA_DIR, SHARED_DATA_DIR, default_data_dir

SHIPPED_MODEL = Path(__file__).resolve().parents[2] / "model" / "artifacts"


@pytest.fixture
def in_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty repository as the working directory, as nox runs every stage from the repository root."""
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "repo")
    return tmp_path / "repo"


def _evaluate(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    evaluate.main(["--model", str(SHIPPED_MODEL), *argv])
    summary: dict[str, object] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return summary


def test_reads_flowers_data_and_writes_a_new_run_folder(
    tiny_data: Path, in_a_checkout: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLOWERS_DATA", str(tiny_data))
    first = _evaluate([], capsys)
    second = _evaluate(["--plots"], capsys)
    assert first["n"] == second["n"] == 4  # the validation images of the tiny set
    assert first["top5"] == 1.0  # the shipped model, on four clear photos
    runs = sorted((in_a_checkout / "model" / "runs").glob("evaluate-*"))
    assert len(runs) == 2  # one folder per run: nothing is overwritten
    first_report, second_report = (in_a_checkout / str(s["report"]) for s in (first, second))
    assert first_report.name == second_report.name == "report-validation.json"
    assert {first_report.parent, second_report.parent} == set(runs)
    assert (second_report.parent / "confusion-validation.png").exists()
    assert not (in_a_checkout / "model" / "reports").exists()  # the tracked reports are left alone
    # The shipped model lies outside this (stand-in) repository: the report names it, with no folder of this machine.
    report = json.loads(first_report.read_text())
    assert report["model_file"] == first["model_file"] == "flowers.tflite"


def test_update_reports_rewrites_the_tracked_ones(
    tiny_data: Path, in_a_checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = _evaluate(["--data", str(tiny_data), "--update-reports"], capsys)
    assert summary["report"] == "model/reports/report-validation.json"
    assert (in_a_checkout / "model" / "reports" / "report-validation.json").exists()
    assert not (in_a_checkout / "model" / "runs").exists()


def test_a_model_inside_the_repository_is_recorded_relative_to_it(
    tiny_data: Path, in_a_checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inside = in_a_checkout / "model" / "artifacts"
    inside.mkdir(parents=True)
    for name in ("flowers.tflite", "labels.txt", "metadata.json"):
        (inside / name).write_bytes((SHIPPED_MODEL / name).read_bytes())
    summary = _evaluate(["--data", str(tiny_data), "--model", str(inside / "flowers.tflite")], capsys)
    assert summary["model_file"] == "model/artifacts/flowers.tflite"


def test_the_default_data_location(tmp_path: Path, in_a_checkout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWERS_DATA", raising=False)
    assert default_data_dir() == PREPARED_DATA_DIR  # where `nox -s prepare` puts it
    (tmp_path / "shared" / "datasets" / "oxford102").mkdir(parents=True)
    assert default_data_dir() == SHARED_DATA_DIR  # the copy beside the clone
    monkeypatch.setenv("FLOWERS_DATA", str(tmp_path / "elsewhere"))
    assert default_data_dir() == tmp_path / "elsewhere"


@pytest.mark.parametrize(
    ("stage", "args"),
    [
        ("evaluate", []),
        ("evaluate", ["--data", "{missing}"]),
        ("train", ["data_dir={missing}", "epochs=1"]),
        ("tune", []),
        ("export", ["--checkpoint", "{missing}/best.pt"]),
    ],
)
def test_without_data_every_stage_says_how_to_get_it_in_one_line(stage: str, args: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "oxford102"
    env = {k: v for k, v in os.environ.items() if k != "FLOWERS_DATA"} | {"FLOWERS_DATA": str(missing)}
    out = subprocess.run(
        [sys.executable, "-m", f"flowers_model.{stage}", *(a.format(missing=missing) for a in args)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr  # no traceback, no usage text
    assert str(missing) in lines[0]
    assert "nox -s prepare" in lines[0]
    assert out.stdout == ""
