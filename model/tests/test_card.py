"""The model card is rendered from what the pipeline wrote: levers, stages, intervals."""

from __future__ import annotations

import json
from pathlib import Path

from flowers_model import card, levers


def _report(top1: float, n: int = 200) -> dict[str, object]:
    return {"n": n, "top1": top1, "top5": 1.0, "ece": 0.01, "nll": 0.1, "model_version": "9.9.9"}


def _model_folders(tmp_path: Path) -> tuple[Path, Path]:
    """An artifacts folder with a (dummy) model file, and an empty reports folder."""
    artifacts, reports = tmp_path / "artifacts", tmp_path / "reports"
    artifacts.mkdir()
    reports.mkdir()
    (artifacts / "flowers.tflite").write_bytes(b"\0" * 1000)
    return artifacts, reports


def _metadata_header(version: str) -> dict[str, object]:
    """The fields of metadata.json every card reads, as an int8 export writes them."""
    return {
        "name": "flowers",
        "version": version,
        "quantization": "static",
        "input": {"shape": [1, 224, 224, 3], "layout": "NHWC", "dtype": "int8"},
        "output": {"dtype": "float32"},
        "temperature": 0.5,
    }


def test_levers_keep_one_row_per_name_with_an_interval(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps(_report(0.9)))
    robustness = tmp_path / "rob.log"
    robustness.write_text(
        '{"corruption": "clean", "top1": 0.9}\n{"corruption": "greyscale", "top1": 0.8}\nnoise line\n'
    )
    out = tmp_path / "levers.json"
    levers.add("a", "first", report, robustness, out)
    report.write_text(json.dumps(_report(0.95)))
    row = levers.add("a", "again", report, None, out)
    rows = json.loads(out.read_text())
    assert [r["name"] for r in rows] == ["a"]
    assert row["change"] == "again"
    low, high = row["top1_ci95"]
    assert low < 0.95 < high


def test_card_shows_stages_levers_and_reproduce_commands(tmp_path: Path) -> None:
    artifacts, reports = _model_folders(tmp_path)
    config = {
        "backbone": "efficientnet-lite0",
        "image_size": 224,
        "freeze_blocks": 5,
        "lr": 0.0004,
        "backbone_lr_scale": 0.5,
        "weight_decay": 0.05,
        "warmup_epochs": 0.3,
        "epochs": 6,
        "batch_size": 32,
        "label_smoothing": 0.1,
        "dropout": 0.2,
        "drop_connect": 0.2,
        "crop_scale_min": 0.3,
        "color_jitter": 0.3,
        "greyscale_p": 0.3,
        "ema_decay": 0.998,
        "seed": 42,
        "threads": 2,
        "out_dir": "model/runs/b",
        "init_from": "model/runs/a/best.pt",
        "data_dir": "oxford102",
    }
    row = {"epoch": 1, "train_loss": 1.0, "train_top1": 0.9, "val_loss": 0.3, "val_top1": 0.98, "seconds": 60}
    meta = {
        **_metadata_header("2.0.0"),
        "best_epoch": 1,
        "train_config": config,
        "training_history": [row],
        "earlier_stages": [
            {
                "train_config": {**config, "freeze_blocks": 8, "init_from": "", "out_dir": "model/runs/a"},
                "best_epoch": 1,
                "training_history": [row],
            }
        ],
    }
    meta["head"] = {
        "method": "linear layer on views",
        "train_rows": 120,
        "temperature": 1.2,
        "validation_top1_file_head": 0.97,
        "validation_top1_refit_head": 0.98,
        "views_seconds": 600.0,
        "views_cached": False,
        "seconds": 700.0,
        "greyscale": {
            "train_rows": 40,
            "temperature": 0.9,
            "validation_top1_colour_layer": 0.93,
            "validation_top1_greyscale_layer": 0.945,
            "validation_top1_changed": {"rotated 90°": [0.9, 0.91]},
        },
    }
    (artifacts / "metadata.json").write_text(json.dumps(meta))
    (reports / "levers.json").write_text(
        json.dumps(
            [
                {
                    "name": "x",
                    "change": "more",
                    "top1": 0.97,
                    "top1_ci95": [0.95, 0.98],
                    "ece": 0.01,
                    "nll": 0.1,
                    "corruptions": {"greyscale": 0.9},
                }
            ]
        )
    )
    text = card.render(artifacts, reports)
    assert "**Stage 1**: from ImageNet weights" in text
    assert "**Stage 2** (shipped)" in text
    assert "greyscale (p = 0.3)" in text
    assert "| x | more | 97.00% (95.0%–98.0%)" in text
    assert "nox -s train -- " in text
    assert "init_from=model/runs/a/best.pt" in text
    assert "data_dir=" not in text
    assert "with the refit one 98.00%" in text
    assert "(40 views; T = 0.900)" in text
    assert "| as they are | 93.00% | 94.50% |" in text
    assert "| rotated 90° | 90.00% | 91.00% |" in text
    assert "(T = 0.900 for its greyscale layer)" in text
    assert "   # stage 2" in text
    # The shipped stage ran 1 of its 6 epochs: the card says so.
    assert "stopped after epoch 1 of its 6-epoch cosine schedule" in text
    assert "epoch 1's weights shipped, validation top-1 98.00% and loss 0.300" in text
    # A model trained in one stage: one train line, not numbered.
    (artifacts / "metadata.json").write_text(json.dumps({**meta, "earlier_stages": []}))
    single = card.render(artifacts, reports)
    assert single.count("nox -s train -- ") == 1
    assert "# stage" not in single


def test_card_of_a_soup_shows_each_run_and_the_average(tmp_path: Path) -> None:
    artifacts, reports = _model_folders(tmp_path)
    base = {
        "backbone": "efficientnet-lite0",
        "image_size": 224,
        "freeze_blocks": 3,
        "lr": 0.001,
        "backbone_lr_scale": 0.3,
        "weight_decay": 0.05,
        "warmup_epochs": 0.5,
        "batch_size": 32,
        "label_smoothing": 0.1,
        "dropout": 0.2,
        "drop_connect": 0.2,
        "crop_scale_min": 0.3,
        "color_jitter": 0.3,
        "threads": 2,
        "init_from": "",
        "data_dir": "oxford102",
    }
    row = {"epoch": 1, "train_loss": 1.0, "train_top1": 0.9, "val_loss": 0.3, "val_top1": 0.98, "seconds": 600}
    runs = [
        {"train_config": {**base, "epochs": 10, "seed": 42, "out_dir": "model/runs/v3"}, "best_epoch": 10},
        {"train_config": {**base, "epochs": 16, "seed": 43, "out_dir": "model/runs/v4"}, "best_epoch": 15},
    ]
    for run in runs:
        run["training_history"] = [row]
    measured = {"top1": 0.985, "top5": 0.998, "nll": 0.2}
    meta = {
        **_metadata_header("2.5.0"),
        "best_epoch": 16,
        "train_config": {**base, "epochs": 10, "seed": 42, "out_dir": "model/runs/soup"},
        "training_history": [],
        "earlier_stages": [],
        "soup": runs,
        "soup_summary": {
            "ingredients": [{"checkpoint": "v3/best.pt", **measured}, {"checkpoint": "v4/best.pt", **measured}],
            "soup_averaged_batchnorm": measured,
            "soup_remeasured_batchnorm": {"top1": 0.99, "top5": 0.999, "nll": 0.19, "training_photos": 2048},
            "batchnorm": "remeasured",
            "temperature": 0.51,
        },
    }
    (artifacts / "metadata.json").write_text(json.dumps(meta))
    text = card.render(artifacts, reports)
    assert "average of 2 runs'" in text
    assert "measured again on 2,048 training photos" in text
    assert "| **average, BatchNorm statistics measured again** (shipped) | 99.00% | 99.90% | 0.190 |" in text
    assert "| run model/runs/v4: seed 43, 16 epochs, best epoch 15 | 98.50% | 99.80% | 0.200 |" in text
    assert "10 and 16 epochs (one run each)" in text
    assert "Seeds 42, 43" in text
    assert "Training took **20 minutes**" in text  # both runs' logs
    trains = [line for line in text.splitlines() if line.startswith("nox -s train -- ")]
    assert len(trains) == 2
    assert "epochs=10" in trains[0]
    assert "seed=43" in trains[1]
    assert trains[1].endswith("   # run 2")
    assert "nox -s soup -- model/runs/v3/best.pt model/runs/v4/best.pt --out model/runs/soup" in text
    assert "nox -s export -- --checkpoint model/runs/soup/best.pt" in text
    assert "tried, not shipped" not in text  # the shipped soup is not listed again as tried
    # A soup that was measured and not shipped: the card of a single run shows it from reports/soup.json.
    (reports / "soup.json").write_text(json.dumps(meta["soup_summary"]))
    single = {**meta, "soup": [], "best_epoch": 1, "training_history": [row], "train_config": runs[1]["train_config"]}
    (artifacts / "metadata.json").write_text(json.dumps(single))
    text = card.render(artifacts, reports)
    assert "### Weight average (tried, not shipped)" in text
    assert "reached 98.50% with the runs' BatchNorm statistics averaged and 99.00% with them measured again" in text
    assert "| v4/best.pt | 98.50% | 99.80% | 0.200 |" in text
    assert "(shipped)" not in text.split("### Weight average")[1].split("##")[0]


def test_speed_ratio_comes_from_one_bench_run() -> None:
    def row(p50: float, size: float) -> dict[str, object]:
        return {"p50": {"median": p50}, "size_mb": size}

    bench = {
        "models": {
            "reference (Xception 299, float32)|1": row(300.0, 92.0),
            "reference (Xception 299, float32)|2": row(160.0, 92.0),
            "ours (EfficientNet-Lite0 224, shipped)|1": row(15.0, 4.0),
            "ours (EfficientNet-Lite0 224, shipped)|2": row(10.0, 4.0),
        }
    }
    text = "\n".join(card._speed_lines(bench))
    assert "**20.0× faster**" in text
    assert "16.0× on two threads" in text
    assert "23.0× smaller" in text
    assert card._speed_lines(None) == []
    assert card._speed_lines({"models": {"ours (x)|1": row(1.0, 1.0)}}) == []
