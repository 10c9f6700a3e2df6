"""Pictures for the model card: confusion matrix, per-class accuracy, class balance."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from flowers_model.data import load_split

__all__ = ["draw_class_balance", "draw_report"]


def draw_report(report: dict[str, Any], class_names: list[str], out: Path, data_dir: Path) -> None:
    split = report["split"]
    confusion = np.array(report["confusion"], dtype=float)
    fig, ax = plt.subplots(figsize=(11, 10))
    image = ax.imshow(np.where(confusion > 0, confusion, np.nan), cmap="viridis", norm=LogNorm(vmin=1))
    ax.set_title(f"Confusion matrix, {split} split (n={report['n']}, top-1 {report['top1']:.1%}); log colour scale")
    ax.set_xlabel("predicted class id")
    ax.set_ylabel("true class id")
    ticks = np.arange(0, len(class_names), 10)
    ax.set_xticks(ticks, [str(t + 1) for t in ticks])
    ax.set_yticks(ticks, [str(t + 1) for t in ticks])
    for pair in report["most_confused"][:5]:
        i, j = class_names.index(pair["true"]), class_names.index(pair["predicted"])
        ax.annotate(
            f"{pair['true']} → {pair['predicted']} ({pair['count']})",
            (j, i),
            xytext=(5, 5),
            textcoords="offset points",
            fontsize=7,
            color="crimson",
        )
    fig.colorbar(image, ax=ax, shrink=0.8, label="images")
    fig.tight_layout()
    fig.savefig(out / f"confusion-{split}.png", dpi=110)
    plt.close(fig)

    per_class = report["per_class_accuracy"]
    ordered = sorted(per_class.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(10, 16))
    ax.barh(
        range(len(ordered)), [v for _, v in ordered], color=["crimson" if v < 0.9 else "seagreen" for _, v in ordered]
    )
    ax.set_yticks(range(len(ordered)), [k for k, _ in ordered], fontsize=6)
    ax.set_xlim(0, 1.0)
    ax.axvline(report["top1"], color="black", linestyle="--", linewidth=1, label=f"overall {report['top1']:.1%}")
    ax.set_xlabel(f"accuracy on the {split} split")
    ax.set_title(f"Per-class accuracy, {split} split (red: below 90%)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / f"per-class-{split}.png", dpi=110)
    plt.close(fig)
    draw_class_balance(data_dir, class_names, out)


def draw_class_balance(data_dir: Path, class_names: list[str], out: Path) -> None:
    """Images per class in train and validation, as the reference project's EDA drew it."""
    train = Counter(e.class_id for e in load_split(data_dir, "train"))
    validation = Counter(e.class_id for e in load_split(data_dir, "validation"))
    order = sorted(range(len(class_names)), key=lambda c: -(train[c] + validation[c]))
    fig, ax = plt.subplots(figsize=(18, 6))
    x = np.arange(len(order))
    ax.bar(x, [train[c] for c in order], label="train", color="steelblue")
    ax.bar(x, [validation[c] for c in order], bottom=[train[c] for c in order], label="validation", color="orange")
    ax.set_xticks(x, [class_names[c] for c in order], rotation=90, fontsize=6)
    ax.set_ylabel("images")
    ax.set_title(
        f"Class balance: {sum(train.values())} train / {sum(validation.values())} validation images, "
        f"{min(train.values())}–{max(train.values())} train images per class"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "class-balance.png", dpi=110)
    plt.close(fig)
