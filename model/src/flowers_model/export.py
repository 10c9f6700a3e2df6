"""Export the trained checkpoint to the LiteRT file that flowers-serving loads.

``python -m flowers_model.export --checkpoint model/runs/lite0/best.pt --out model/artifacts``

Writes ``flowers.tflite`` (NHWC pixels 0-255 in; 102 calibrated logits and the
pooled features out; normalisation inside), ``labels.txt`` (output order),
``metadata.json`` (name, version, recipe), ``flower_score.npz`` (the "not a
flower" statistics of this model's features, see :mod:`flowers_model.not_a_flower`)
and ``head.npz`` (the last layer refit on this file's int8 features, see
:mod:`flowers_model.refit_head`).
The float model is converted with ``litert-torch``; ``--quantization`` then
applies ``ai-edge-quantizer``: ``static`` (int8 weights and activations,
calibrated on training images, but a float classifier layer so the logits never
clip: the smallest and fastest), ``dynamic`` (int8 weights only) or ``none``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flowers_model import __version__
from flowers_model.data import data_dir_or_exit, default_data_dir, load_split
from flowers_model.net import NHWCExport, from_checkpoint
from flowers_model.not_a_flower import fit_scorer
from flowers_model.paths import portable_paths
from flowers_model.refit_head import DEFAULT_CACHE, refit_head
from flowers_model.train import read_history
from flowers_serving.classifier import LABELS_FILE, METADATA_FILE, MODEL_FILE, Classifier
from flowers_serving.flower_score import SCORER_FILE
from flowers_serving.head import HEAD_FILE
from flowers_serving.imaging import load_image

__all__ = ["describe_io", "export", "main"]

#: The converted graph's name for its first output, the logits (the second is the pooled features).
_LOGITS_OUTPUT = "serving_default_output_0"


def convert_float(checkpoint: dict[str, Any], path: Path) -> None:
    import litert_torch  # heavy: only the export step needs it

    cfg = checkpoint["config"]
    module = NHWCExport(from_checkpoint(checkpoint)).eval()
    sample = (torch.zeros(1, cfg["image_size"], cfg["image_size"], 3),)
    litert_torch.convert(module, sample).export(str(path))


def quantize(float_path: Path, out_path: Path, mode: str, calibration: list[np.ndarray]) -> None:
    from ai_edge_quantizer import qtyping, quantizer, recipe, recipe_manager

    if mode == "static":
        # int8 everywhere except the last layer: an int8 logits tensor clipped at its calibrated range,
        # so a third of confident photos shared one top score (v1, issue #16). The classifier layer keeps
        # int8 weights but computes in float, and the graph's logits output is float32.
        manager = recipe_manager.RecipeManager()
        manager.add_static_config(
            regex=f"^(?!{_LOGITS_OUTPUT}).*",
            operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
            activation_num_bits=8,
            weight_num_bits=8,
        )
        manager.add_weight_only_config(
            regex=_LOGITS_OUTPUT, operation_name=qtyping.TFLOperationName.FULLY_CONNECTED, num_bits=8
        )
        qt = quantizer.Quantizer(str(float_path), manager.get_quantization_recipe())
    else:
        qt = quantizer.Quantizer(str(float_path), recipe.dynamic_wi8_afp32())
    result = None
    if qt.need_calibration:
        # The converted model has one signature with one input.
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(float_path))
        (key,) = interpreter.get_signature_list().keys()
        (input_name,) = interpreter.get_signature_runner(key).get_input_details().keys()
        data = [{input_name: x[np.newaxis].astype(np.float32)} for x in calibration]
        result = qt.calibrate({key: data}, num_threads=2)
    qt.quantize(result).export_model(str(out_path), overwrite=True)


def describe_io(model_path: Path) -> dict[str, Any]:
    """The exported file's input and output tensors, as the runtime reads them (for metadata.json)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path))
    (inp,) = interpreter.get_input_details()
    outputs = sorted(interpreter.get_output_details(), key=lambda o: int(o["shape"][-1]))
    logits, features = outputs[0], outputs[-1]

    def tensor(detail: dict[str, Any]) -> dict[str, Any]:
        scale, zero_point = detail["quantization"]
        info: dict[str, Any] = {"shape": [int(d) for d in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name}
        if scale:
            info["quantization"] = {"scale": float(scale), "zero_point": int(zero_point)}
        return info

    return {
        "input": {
            **tensor(inp),
            "layout": "NHWC",
            "meaning": "RGB pixels 0-255 (quantised with scale/zero_point when given); normalisation inside",
        },
        "output": {**tensor(logits), "meaning": "102 logits divided by the temperature; softmax gives probabilities"},
        "features": {**tensor(features), "meaning": "pooled penultimate features, for the not-a-flower scorer"},
    }


def _earlier_stages(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """The configs and logs of the runs this one started from (``init_from``), oldest first."""
    stages: list[dict[str, Any]] = []
    seen: set[str] = set()
    source = cfg.get("init_from") or ""
    while source and source not in seen and Path(source).exists():
        seen.add(source)
        earlier = torch.load(source, weights_only=False, map_location="cpu")
        stages.insert(
            0,
            {
                "train_config": portable_paths(earlier["config"], ("data_dir", "out_dir", "init_from")),
                "best_epoch": earlier["epoch"] + 1,
                "training_history": read_history(Path(source).parent),
            },
        )
        source = earlier["config"].get("init_from") or ""
    return stages


def _soup(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The metadata of a soup's ingredients (nothing for a single run's checkpoint)."""
    if "soup" not in checkpoint:
        return {}
    ingredients = [
        {**run, "train_config": portable_paths(run["train_config"], ("data_dir", "out_dir", "init_from"))}
        for run in checkpoint["soup"]
    ]
    return {"soup": ingredients, "soup_summary": checkpoint["soup_summary"]}


def export(
    checkpoint_path: Path,
    out_dir: Path,
    *,
    quantization: str,
    calibration_images: int,
    data_dir: Path,
    name: str,
    version: str,
    flower_score: bool = True,
    head: bool = True,
) -> dict[str, Any]:
    checkpoint = torch.load(checkpoint_path, weights_only=False, map_location="cpu")
    cfg = checkpoint["config"]
    out_dir.mkdir(parents=True, exist_ok=True)
    # The float model stays beside the checkpoint (for comparison); only the shipped file goes to out_dir.
    float_path = checkpoint_path.parent / "flowers-float32.tflite"
    started = time.time()
    convert_float(checkpoint, float_path)
    print(f"converted {checkpoint_path} -> {float_path} ({float_path.stat().st_size / 1e6:.1f} MB)")
    model_path = out_dir / MODEL_FILE
    if quantization == "none":
        shutil.copyfile(float_path, model_path)
    else:
        # Calibrate on training images only; validation stays untouched for selection.
        examples = load_split(data_dir, "train")
        rng = random.Random(0)
        picked = rng.sample(examples, min(calibration_images, len(examples)))
        calibration = [load_image(e.path.read_bytes(), cfg["image_size"]) for e in picked]
        quantize(float_path, model_path, quantization, calibration)
        print(f"quantized ({quantization}) -> {model_path} ({model_path.stat().st_size / 1e6:.2f} MB)")
    (out_dir / LABELS_FILE).write_text("\n".join(checkpoint["class_names"]) + "\n")
    (out_dir / HEAD_FILE).unlink(missing_ok=True)  # a refit head belongs to the file it was fitted on
    metadata = {
        "name": name,
        "version": version,
        "backbone": cfg["backbone"],
        **describe_io(model_path),
        "temperature": checkpoint.get("temperature", 1.0),
        "quantization": quantization,
        "best_epoch": checkpoint["epoch"] + 1,
        "train_config": portable_paths(cfg, ("data_dir", "out_dir", "init_from")),  # no paths of this machine
        "training_history": read_history(checkpoint_path.parent),
        "earlier_stages": _earlier_stages(cfg),  # progressive unfreezing: the runs this one started from
        # A weight average of several runs (flowers_model.soup): each run's recipe, and what each measured.
        **_soup(checkpoint),
        "export_seconds": round(time.time() - started, 1),
    }
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    if flower_score:
        # The "not a flower" statistics belong to this model's features: refit them on every export.
        metadata = refit_scorer(out_dir, data_dir)
    if head:
        # The last layer refit on this file's own int8 features of many views (flowers_model.refit_head).
        metadata = refit_head(out_dir, data_dir)
    return metadata


def refit_scorer(out_dir: Path, data_dir: Path) -> dict[str, Any]:
    """Fit ``flower_score.npz`` for the exported model in ``out_dir`` and record it in its metadata."""
    (out_dir / SCORER_FILE).unlink(missing_ok=True)
    validation = load_split(data_dir, "validation")
    scorer, summary = fit_scorer(Classifier(out_dir), load_split(data_dir, "train"), validation)
    scorer.save(out_dir / SCORER_FILE)
    metadata: dict[str, Any] = json.loads((out_dir / METADATA_FILE).read_text())
    metadata["flower_score"] = summary
    print(f"not-a-flower scorer -> {out_dir / SCORER_FILE}: {json.dumps(summary)}")
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path("model/runs/lite0/best.pt"))
    parser.add_argument("--out", type=Path, default=Path("model/artifacts"))
    parser.add_argument("--data", type=Path, default=None, help="calibration images (default: as evaluate finds it)")
    parser.add_argument("--quantization", choices=["static", "dynamic", "none"], default="static")
    parser.add_argument("--calibration-images", type=int, default=256)
    parser.add_argument("--name", default="flowers-efficientnet-lite0")
    parser.add_argument("--version", default=__version__)
    parser.add_argument(
        "--scorer-only", action="store_true", help="only refit the not-a-flower scorer of the model already in --out"
    )
    parser.add_argument(
        "--head-only", action="store_true", help="only refit the last layer (head.npz) of the model already in --out"
    )
    args = parser.parse_args(argv)
    if args.scorer_only or args.head_only:
        data_dir = data_dir_or_exit(args.data or default_data_dir())
        if args.scorer_only:
            refit_scorer(args.out, data_dir)
        if args.head_only:
            # Kept by the file's hash: refitting the same file again takes minutes, not a quarter of an hour.
            refit_head(args.out, data_dir, version=args.version, cache_dir=DEFAULT_CACHE)
        return
    torch.manual_seed(0)
    metadata = export(
        args.checkpoint,
        args.out,
        quantization=args.quantization,
        calibration_images=args.calibration_images,
        data_dir=data_dir_or_exit(args.data or default_data_dir()),
        name=args.name,
        version=args.version,
    )
    print(json.dumps({k: metadata[k] for k in ("name", "version", "quantization", "temperature")}))


if __name__ == "__main__":
    main()
