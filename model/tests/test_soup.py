"""The weight average of several runs (flowers_model.soup): on two tiny runs, and its parts on toy networks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from flowers_model import export, soup, train
from flowers_model.config import TrainConfig, apply_overrides
from flowers_model.net import FlowerNet, build_model


def _run(tiny_data: Path, out: Path, seed: int) -> Path:
    cfg = apply_overrides(
        TrainConfig(),
        [f"data_dir={tiny_data}", f"out_dir={out}", "epochs=1", "batch_size=4", "max_steps=2", f"seed={seed}"],
    )
    train.train(cfg)
    return out / "best.pt"


@pytest.fixture(scope="module")
def two_runs(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return [_run(tiny_data, tmp_path_factory.mktemp(f"seed{seed}"), seed) for seed in (1, 2)]


def _untrained(freeze_blocks: int) -> FlowerNet:
    return build_model(
        "efficientnet-lite0",
        num_classes=102,
        dropout=0.2,
        drop_connect=0.2,
        freeze_blocks=freeze_blocks,
        pretrained=False,
    )


def _bn_buffers(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: value.clone()
        for name, value in module.state_dict().items()
        if name.endswith(("running_mean", "running_var"))
    }


def test_a_soup_of_two_runs_averages_their_weights(two_runs: list[Path], tiny_data: Path, tmp_path: Path) -> None:
    summary = soup.make_soup(two_runs, tmp_path / "soup", tiny_data, bn_images=4)
    made = torch.load(tmp_path / "soup" / "best.pt", weights_only=False)
    runs = [torch.load(path, weights_only=False) for path in two_runs]
    # Trained weights are the mean of the runs' (BatchNorm statistics may be measured again, the weights never).
    for key in ("backbone._fc.weight", "backbone._conv_head.weight", "backbone._blocks.10._depthwise_conv.weight"):
        assert torch.allclose(made["model"][key], (runs[0]["model"][key] + runs[1]["model"][key]) / 2), key
    # A temperature of its own, fitted on validation, as train.py does for one run.
    assert made["temperature"] > 0
    assert float(made["model"]["inv_temperature"]) == pytest.approx(1 / made["temperature"])
    # Every ingredient and both BatchNorm variants measured on validation and written down.
    written = json.loads((tmp_path / "soup" / "soup.json").read_text())
    assert written == summary
    assert [i["checkpoint"] for i in written["ingredients"]] == [f"{p.parent.name}/best.pt" for p in two_runs]
    for measured in (*written["ingredients"], written["soup_averaged_batchnorm"], written["soup_remeasured_batchnorm"]):
        assert 0 <= measured["top1"] <= measured["top5"] <= 1
        assert measured["nll"] > 0
    assert written["batchnorm"] in ("averaged", "remeasured")
    # It loads as a training run's checkpoint does.
    net = _untrained(freeze_blocks=8)
    net.load_state_dict(made["model"])


def test_export_records_the_ingredients_without_this_machines_folders(
    two_runs: list[Path], tiny_data: Path, tmp_path: Path
) -> None:
    soup.make_soup(two_runs, tmp_path / "soup", tiny_data, bn_images=4)
    recorded = export._soup(torch.load(tmp_path / "soup" / "best.pt", weights_only=False))
    assert [run["train_config"]["seed"] for run in recorded["soup"]] == [1, 2]
    assert all(run["best_epoch"] == 1 and len(run["training_history"]) == 1 for run in recorded["soup"])
    assert str(tiny_data.parent) not in json.dumps(recorded["soup"])
    assert recorded["soup_summary"]["ingredients"][0]["checkpoint"].endswith("best.pt")
    # A single run's checkpoint records no soup.
    assert export._soup(torch.load(two_runs[0], weights_only=False)) == {}


def test_average_weights_refuses_different_networks() -> None:
    with pytest.raises(SystemExit, match="different networks"):
        soup.average_weights([{"a": torch.zeros(2)}, {"b": torch.zeros(2)}])
    with pytest.raises(SystemExit, match="different shapes"):
        soup.average_weights([{"a": torch.zeros(2)}, {"a": torch.zeros(3)}])


def test_average_weights_means_floats_and_keeps_counters() -> None:
    averaged = soup.average_weights(
        [
            {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(5)},
            {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(9)},
        ]
    )
    assert torch.equal(averaged["w"], torch.tensor([2.0, 4.0]))
    assert int(averaged["n"]) == 5  # a batch counter is not averaged


def test_scores_of_toy_logits() -> None:
    logits = torch.tensor([[5.0, 4, 3, 2, 1, 0, -1], [0.0, 1, 2, 3, 4, 5, 6], [0.0, 1, 2, 3, 4, 5, 9]])
    labels = torch.tensor([0, 2, 0])  # first, fifth, last place
    measured = soup.scores(logits, labels)
    assert measured["top1"] == pytest.approx(1 / 3, abs=1e-4)
    assert measured["top5"] == pytest.approx(2 / 3, abs=1e-4)


def test_remeasuring_batchnorm_keeps_the_frozen_layers_statistics() -> None:
    torch.manual_seed(0)
    net = _untrained(freeze_blocks=4)
    frozen = torch.nn.ModuleList(net.frozen_modules())
    frozen_before, all_before = _bn_buffers(frozen), _bn_buffers(net)
    pixels = torch.rand(6, 3, 224, 224) * 255
    soup.remeasure_batchnorm(net, DataLoader(TensorDataset(pixels, torch.zeros(6, dtype=torch.long)), batch_size=3))
    assert not net.training
    for name, value in _bn_buffers(frozen).items():
        assert torch.equal(value, frozen_before[name]), name
    changed = [name for name, value in _bn_buffers(net).items() if not torch.equal(value, all_before[name])]
    assert any(name.startswith("backbone._bn1") for name in changed)  # the last, trained BatchNorm was measured
    assert not any(name.startswith(("backbone._bn0", "backbone._blocks.0.")) for name in changed)
    # Momentum is restored: later training steps update the statistics as before.
    assert all(
        m.momentum == 0.01 or m.momentum == pytest.approx(0.01)
        for m in net.modules()
        if isinstance(m, torch.nn.BatchNorm2d)
    )


def test_remeasuring_batchnorm_runs_without_dropout_or_stochastic_depth() -> None:
    # Served networks run without either: the statistics are those of the served network, so measuring
    # twice over the same photos gives the same numbers (random drops would not).
    net = _untrained(freeze_blocks=4)
    loader = DataLoader(TensorDataset(torch.rand(4, 3, 224, 224) * 255, torch.zeros(4, dtype=torch.long)), batch_size=2)
    measured = []
    for _ in range(2):
        torch.manual_seed(len(measured))
        soup.remeasure_batchnorm(net, loader)
        measured.append(_bn_buffers(net))
    for name, value in measured[0].items():
        assert torch.equal(value, measured[1][name]), name
