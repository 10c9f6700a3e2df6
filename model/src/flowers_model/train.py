"""Fine-tune EfficientNet-Lite on Oxford 102: ``python -m flowers_model.train [key=value ...]``.

Checkpoints every epoch to ``<out_dir>/last.pt`` (``--resume`` continues from
it), keeps the best validation epoch in ``best.pt``, then fits the softmax
temperature on validation and stores it in ``best.pt``. Ctrl-C keeps what is
done: the epochs that finished stay, and the best of them is calibrated as after
the last epoch. ``--finish`` does that step alone, for a run stopped otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader
from tqdm import tqdm

from flowers_model.config import TrainConfig, apply_overrides
from flowers_model.data import data_dir_or_exit, load_class_names, load_split
from flowers_model.dataset import Corruptions, ImageDataset
from flowers_model.net import FlowerNet, build_model, from_checkpoint

__all__ = ["calibrate_temperature", "finish", "main", "predict_logits", "read_history", "train"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def predict_logits(net: FlowerNet, loader: DataLoader[Any], desc: str = "eval") -> tuple[torch.Tensor, torch.Tensor]:
    net.eval()
    logits, labels = [], []
    for pixels, y in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True):
        logits.append(net(pixels))
        labels.append(y)
    return torch.cat(logits), torch.cat(labels)


def read_history(run_dir: Path) -> list[dict[str, float]]:
    """The per-epoch log :func:`train` writes beside its checkpoints (empty if it is not there)."""
    path = run_dir / "history.json"
    history: list[dict[str, float]] = json.loads(path.read_text()) if path.exists() else []
    return history


def calibrate_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Temperature T minimising validation NLL of softmax(logits / T) (Guo et al., 2017)."""
    log_t = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def _lr_lambda(cfg: TrainConfig, steps_per_epoch: int) -> Any:
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = max(1, round(cfg.warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def train(cfg: TrainConfig, *, resume: bool = False) -> dict[str, Any]:
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    data_dir = Path(cfg.data_dir)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    class_names = load_class_names(data_dir)
    train_set = ImageDataset(
        load_split(data_dir, "train", limit_per_class=cfg.limit_per_class),
        cfg.image_size,
        train=True,
        crop_scale_min=cfg.crop_scale_min,
        hflip=cfg.hflip,
        color_jitter=cfg.color_jitter,
        corruptions=Corruptions(
            greyscale=cfg.greyscale_p, rot90=cfg.rot90_p, blur=cfg.blur_p, lowres=cfg.lowres_p, jpeg=cfg.jpeg_p
        ),
        seed=cfg.seed,
    )
    val_loader = _validation_loader(cfg)
    generator = torch.Generator().manual_seed(cfg.seed)
    train_loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, drop_last=True, generator=generator)

    net = build_model(
        cfg.backbone,
        num_classes=len(class_names),
        dropout=cfg.dropout,
        drop_connect=cfg.drop_connect,
        freeze_blocks=cfg.freeze_blocks,
    )
    if cfg.init_from:
        net.load_state_dict(torch.load(cfg.init_from, weights_only=False)["model"])
        net.inv_temperature.fill_(1.0)  # recalibrated at the end of this stage
        print(f"initialised from {cfg.init_from}")
    b = net.backbone
    head_params = [*b._conv_head.parameters(), *b._bn1.parameters(), *b._fc.parameters()]
    head_ids = {id(p) for p in head_params}
    block_params = [p for p in net.parameters() if p.requires_grad and id(p) not in head_ids]
    opt = torch.optim.AdamW(
        [
            {"params": head_params, "lr": cfg.lr},
            {"params": block_params, "lr": cfg.lr * cfg.backbone_lr_scale},
        ],
        weight_decay=cfg.weight_decay,
    )
    # The EMA copy averages BatchNorm statistics too (use_buffers), so it can be evaluated and exported as is.
    ema = (
        AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        if cfg.ema_decay
        else None
    )
    steps_per_epoch = len(train_loader) if not cfg.max_steps else min(len(train_loader), cfg.max_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, steps_per_epoch))

    history: list[dict[str, float]] = []
    start_epoch, best_top1 = 0, -1.0
    if resume and (out / "last.pt").exists():
        state = torch.load(out / "last.pt", weights_only=False)
        if state["config"] != dataclasses.asdict(cfg):
            raise SystemExit(f"{out}/last.pt was trained with another config; use a new out_dir")
        net.load_state_dict(state["model"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        start_epoch, best_top1, history = state["epoch"] + 1, state["best_top1"], state["history"]
        print(f"resumed from {out}/last.pt after epoch {start_epoch}")

    epoch = start_epoch
    try:
        for epoch in range(start_epoch, cfg.epochs):
            train_set.epoch = epoch
            net.train()
            started = time.time()
            seen, loss_sum, correct = 0, 0.0, 0
            bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", total=steps_per_epoch, dynamic_ncols=True)
            for step, (pixels, y) in enumerate(bar):
                if step >= steps_per_epoch:
                    break
                logits = net(pixels)
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                if ema is not None:
                    ema.update_parameters(net)
                seen += len(y)
                loss_sum += loss.item() * len(y)
                correct += int((logits.argmax(1) == y).sum())
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
            evaluated: FlowerNet = ema.module if ema is not None else net  # type: ignore[assignment]
            logits, labels = predict_logits(evaluated, val_loader)
            val_top1 = float((logits.argmax(1) == labels).float().mean())
            val_loss = float(F.cross_entropy(logits, labels))
            row = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / max(1, seen),
                "train_top1": correct / max(1, seen),
                "val_loss": val_loss,
                "val_top1": val_top1,
                "seconds": time.time() - started,
            }
            history.append(row)
            print(json.dumps(row))
            if val_top1 > best_top1:
                best_top1 = val_top1
                _save(
                    {
                        "model": evaluated.state_dict(),
                        "config": dataclasses.asdict(cfg),
                        "epoch": epoch,
                        "val_top1": val_top1,
                        "class_names": class_names,
                    },
                    out / "best.pt",
                )
            _save(
                {
                    "model": net.state_dict(),
                    "ema": ema.state_dict() if ema is not None else None,
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "generator": generator.get_state(),
                    "epoch": epoch,
                    "best_top1": best_top1,
                    "history": history,
                    "config": dataclasses.asdict(cfg),
                },
                out / "last.pt",
            )
            (out / "history.json").write_text(json.dumps(history, indent=2))
    except KeyboardInterrupt:
        # Ctrl-C keeps what is done: every finished epoch is in last.pt (--resume continues) and the best in
        # best.pt, which is calibrated below as after the last epoch. A second Ctrl-C stops that too.
        if not (out / "best.pt").exists():
            raise
        print(f"stopped during epoch {epoch + 1}: calibrating the best epoch so far", file=sys.stderr)
    return finish(cfg, net)


def _save(checkpoint: dict[str, Any], path: Path) -> None:
    """Write beside, then rename: a Ctrl-C or a kill while saving leaves the previous checkpoint whole."""
    partial = path.with_suffix(".partial")
    torch.save(checkpoint, partial)
    partial.replace(path)


def _validation_loader(cfg: TrainConfig) -> DataLoader[Any]:
    val_examples = load_split(Path(cfg.data_dir), "validation")
    if cfg.eval_limit:
        val_examples = val_examples[: cfg.eval_limit]
    return DataLoader(ImageDataset(val_examples, cfg.image_size, train=False), batch_size=64)


def finish(cfg: TrainConfig, net: FlowerNet | None = None) -> dict[str, Any]:
    """Temperature scaling on the best epoch's validation logits, then ``summary.json``: what :func:`train` does
    after its last epoch or a Ctrl-C, and ``--finish`` does for a run stopped otherwise (killed, out of time)."""
    out = Path(cfg.out_dir)
    if not (out / "best.pt").exists():
        raise SystemExit(f"{out}/best.pt does not exist: no epoch of this run has finished")
    best = torch.load(out / "best.pt", weights_only=False)
    if best["config"] != dataclasses.asdict(cfg):
        raise SystemExit(f"{out}/best.pt was trained with another config; use its own settings")
    if net is None:
        net = from_checkpoint(best)
    else:
        net.load_state_dict(best["model"])
    net.inv_temperature.fill_(1.0)
    logits, labels = predict_logits(net, _validation_loader(cfg), desc="calibrate")
    temperature = calibrate_temperature(logits, labels)
    net.inv_temperature.fill_(1.0 / temperature)
    best["model"] = net.state_dict()
    best["temperature"] = temperature
    _save(best, out / "best.pt")
    history = read_history(out)
    summary = {
        "best_epoch": best["epoch"] + 1,
        "val_top1": best["val_top1"],
        "temperature": temperature,
        "epochs_trained": len(history),  # fewer than the config's when the run was stopped
        "history": history,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}))
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="JSON file of TrainConfig overrides")
    parser.add_argument("--resume", action="store_true", help="continue from <out_dir>/last.pt")
    parser.add_argument(
        "--finish",
        action="store_true",
        help="train no further: calibrate the best epoch of a stopped run (same settings) and write its summary",
    )
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. epochs=3")
    args = parser.parse_args(argv)
    cfg = apply_overrides(TrainConfig(), args.overrides, args.config)
    data_dir_or_exit(Path(cfg.data_dir))
    print(json.dumps(dataclasses.asdict(cfg)))
    if args.finish:
        torch.set_num_threads(cfg.threads)
        finish(cfg)
    else:
        train(cfg, resume=args.resume)


if __name__ == "__main__":
    main()
