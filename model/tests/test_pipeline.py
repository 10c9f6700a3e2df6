"""The whole pipeline on the tiny data set: train a step -> resume -> export -> evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowers_model import evaluate, export, train
from flowers_model.config import TrainConfig, apply_overrides


@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    cfg = apply_overrides(
        TrainConfig(),
        [f"data_dir={tiny_data}", f"out_dir={out}", "epochs=1", "batch_size=4", "max_steps=2", "threads=2"],
    )
    summary = train.train(cfg)
    assert summary["best_epoch"] == 1
    assert summary["temperature"] > 0
    return out


def test_training_writes_checkpoints(trained: Path) -> None:
    assert (trained / "best.pt").exists()
    assert (trained / "last.pt").exists()
    history = json.loads((trained / "history.json").read_text())
    assert len(history) == 1
    assert 0.0 <= history[0]["val_top1"] <= 1.0


def test_training_is_deterministic_under_a_seed(tiny_data: Path, tmp_path: Path) -> None:
    import torch

    weights = []
    for run in ("a", "b"):
        cfg = apply_overrides(
            TrainConfig(),
            [f"data_dir={tiny_data}", f"out_dir={tmp_path / run}", "epochs=1", "batch_size=4", "max_steps=2", "seed=7"],
        )
        train.train(cfg)
        weights.append(torch.load(tmp_path / run / "last.pt", weights_only=False)["model"])
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), key


def test_resume_continues_from_the_checkpoint(
    trained: Path, tiny_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = apply_overrides(
        TrainConfig(),
        [f"data_dir={tiny_data}", f"out_dir={trained}", "epochs=1", "batch_size=4", "max_steps=2", "threads=2"],
    )
    summary = train.train(cfg, resume=True)
    assert "resumed" in capsys.readouterr().out
    assert len(summary["history"]) == 1  # nothing left to train; the history came from the checkpoint


def test_second_stage_starts_from_the_first(
    trained: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = apply_overrides(
        TrainConfig(),
        [
            f"data_dir={tiny_data}",
            f"out_dir={tmp_path}",
            "epochs=1",
            "batch_size=4",
            "max_steps=1",
            "freeze_blocks=4",
            f"init_from={trained / 'best.pt'}",
        ],
    )
    train.train(cfg)
    assert "initialised from" in capsys.readouterr().out
    assert (tmp_path / "best.pt").exists()


def test_ctrl_c_keeps_the_finished_epochs_and_calibrates_the_best(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_tqdm = train.tqdm

    def interrupted_in_epoch_2(*args: object, **kwargs: object) -> object:
        if str(kwargs.get("desc", "")).startswith("epoch 2/"):
            raise KeyboardInterrupt
        return real_tqdm(*args, **kwargs)

    monkeypatch.setattr(train, "tqdm", interrupted_in_epoch_2)
    cfg = apply_overrides(
        TrainConfig(),
        [f"data_dir={tiny_data}", f"out_dir={tmp_path}", "epochs=3", "batch_size=4", "max_steps=1"],
    )
    summary = train.train(cfg)
    assert "stopped during epoch 2" in capsys.readouterr().err
    assert summary["epochs_trained"] == 1
    assert summary["best_epoch"] == 1
    import torch

    best = torch.load(tmp_path / "best.pt", weights_only=False)
    assert best["temperature"] == summary["temperature"]
    assert torch.load(tmp_path / "last.pt", weights_only=False)["epoch"] == 0  # --resume continues with epoch 2
    assert not list(tmp_path.glob("*.partial"))


def test_finish_calibrates_a_run_stopped_otherwise(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = [f"data_dir={tiny_data}", f"out_dir={tmp_path}", "epochs=1", "batch_size=4", "max_steps=1"]
    with pytest.raises(SystemExit, match="no epoch of this run has finished"):
        train.main(["--finish", *settings])
    train.train(apply_overrides(TrainConfig(), settings))
    (tmp_path / "summary.json").unlink()
    capsys.readouterr()
    train.main(["--finish", *settings])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["epochs_trained"] == 1
    assert summary["temperature"] > 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["best_epoch"] == 1
    with pytest.raises(SystemExit, match="another config"):
        train.main(["--finish", *settings, "lr=0.5"])


def test_resume_refuses_another_config(trained: Path, tiny_data: Path) -> None:
    cfg = apply_overrides(TrainConfig(), [f"data_dir={tiny_data}", f"out_dir={trained}", "epochs=1", "lr=0.5"])
    with pytest.raises(SystemExit, match="another config"):
        train.train(cfg, resume=True)


@pytest.mark.export
def test_export_then_evaluate_through_the_serving_path(
    trained: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifacts = tmp_path / "artifacts"
    metadata = export.export(
        trained / "best.pt",
        artifacts,
        quantization="static",
        calibration_images=4,
        data_dir=tiny_data,
        name="tiny",
        version="0.0.1",
    )
    assert metadata["quantization"] == "static"
    # Where it was trained is recorded without this machine's folders (here both lie outside the repository).
    assert metadata["train_config"]["data_dir"] == tiny_data.name
    assert metadata["train_config"]["out_dir"] == trained.name
    assert str(tiny_data.parent) not in (artifacts / "metadata.json").read_text()
    assert (artifacts / "flowers.tflite").stat().st_size < 6_000_000
    assert len((artifacts / "labels.txt").read_text().splitlines()) == 102
    # The logits come out in float: an int8 output clipped confident photos to one top score (issue #16).
    assert metadata["output"]["dtype"] == "float32"
    assert metadata["features"]["shape"] == [1, 1280]
    # Every export fits the "not a flower" scorer of its own features.
    assert metadata["flower_score"]["validation_accepted"] >= 0.98
    from flowers_serving.classifier import Classifier

    classifier = Classifier(artifacts)
    assert classifier.scorer is not None
    # ... and a greyscale threshold, recorded beside it.
    assert classifier.scorer.greyscale_threshold is not None
    assert round(classifier.scorer.greyscale_threshold, 4) == metadata["flower_score"]["greyscale_threshold_similarity"]
    # ... on a bank of the training photos in greyscale, one row each.
    assert classifier.scorer.greyscale_bank is not None
    assert classifier.scorer.greyscale_bank.shape == classifier.scorer.bank.shape
    assert metadata["flower_score"]["greyscale_bank_images"] == 8
    # ... and refits the last layer on its own int8 features (8 training photos x (4 views x colour/greyscale + 4)).
    assert classifier.head is not None
    assert metadata["head"]["train_rows"] == 8 * (4 * 2 + 4)
    assert metadata["version"] == "0.0.1"
    photo = sorted((tiny_data / "jpg").iterdir())[0].read_bytes()
    flower = classifier.classify(photo, top_k=3).flower
    assert flower is not None
    assert 0.0 <= flower.flower_score <= 1.0
    assert flower.is_flower == (flower.flower_score >= 0.5)
    capsys.readouterr()
    evaluate.main(
        [
            "--data",
            str(tiny_data),
            "--split",
            "validation",
            "--model",
            str(artifacts),
            "--out",
            str(tmp_path / "reports"),
            "--plots",
        ]
    )
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    assert {"model", "split", "n", "top1", "top5", "ece"} <= set(summary)
    assert summary["model"] == "tiny"
    assert summary["n"] == 4
    assert (tmp_path / "reports" / "report-validation.json").exists()
    assert (tmp_path / "reports" / "confusion-validation.png").exists()
    assert (tmp_path / "reports" / "class-balance.png").exists()
