"""The pure core: image bytes in, ordered top-k predictions out.

Knows nothing of Lambda or HTTP. A :class:`Classifier` holds one LiteRT
interpreter and the labels; build it once per process (cold start) and call
:meth:`Classifier.classify` per request.

A second look: when the model's metadata asks for one (``second_look``), a
flower photo whose top probability stays below its threshold is run again as
its mirror image and the two calibrated logit vectors are averaged. Confident
photos (most of them) and photos that are not flowers cost one inference; the
unsure flowers, where a flip average changes answers, two.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from flowers_serving.errors import BadRequest
from flowers_serving.flower_score import SCORER_FILE, FlowerScore, FlowerScorer
from flowers_serving.head import HEAD_FILE, Head, is_greyscale
from flowers_serving.imaging import DEFAULT_MAX_DECODE_BYTES, DEFAULT_MAX_PIXELS, load_image
from flowers_serving.logs import capture_stderr

__all__ = [
    "DEFAULT_TOP_K",
    "MAX_TOP_K",
    "Classification",
    "Classifier",
    "ModelInfo",
    "Prediction",
    "default_model_dir",
    "softmax",
]

DEFAULT_TOP_K: Final = 10
MAX_TOP_K: Final = 102

#: Environment variables read by :meth:`Classifier.from_env`.
ENV_MODEL_DIR: Final = "FLOWERS_MODEL_DIR"
ENV_NUM_THREADS: Final = "FLOWERS_NUM_THREADS"
ENV_RUNTIME: Final = "FLOWERS_RUNTIME"  # "litert" (default) or "tflite-runtime"
ENV_MAX_PIXELS: Final = "FLOWERS_MAX_PIXELS"
ENV_MAX_DECODE_BYTES: Final = "FLOWERS_MAX_DECODE_BYTES"

logger = logging.getLogger(__name__)

MODEL_FILE: Final = "flowers.tflite"
LABELS_FILE: Final = "labels.txt"
METADATA_FILE: Final = "metadata.json"


class _Interpreter(Protocol):
    def allocate_tensors(self) -> None: ...
    def resize_tensor_input(self, input_index: int, tensor_size: list[int]) -> None: ...
    def get_input_details(self) -> list[dict[str, Any]]: ...
    def get_output_details(self) -> list[dict[str, Any]]: ...
    def set_tensor(self, index: int, value: npt.NDArray[Any]) -> None: ...
    def invoke(self) -> None: ...
    def get_tensor(self, index: int) -> npt.NDArray[Any]: ...


@dataclass(frozen=True)
class Prediction:
    label: str
    class_id: int  # the official Oxford 102 label, 1-102
    score: float  # calibrated softmax probability


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    input_size: int
    runtime: str
    num_threads: int


@dataclass(frozen=True)
class Classification:
    predictions: list[Prediction]
    model: ModelInfo
    timings_ms: dict[str, float] = field(default_factory=dict)
    #: Whether the photo shows one of our species; None for a model shipped without a scorer.
    flower: FlowerScore | None = None


def default_model_dir() -> Path:
    """``$FLOWERS_MODEL_DIR`` or the model packaged inside this wheel."""
    env = os.environ.get(ENV_MODEL_DIR)
    if env:
        return Path(env)
    return Path(str(resources.files("flowers_serving") / "model_data"))


def softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    shifted = logits.astype(np.float64) - np.max(logits)
    exp = np.exp(shifted)
    result: npt.NDArray[np.float64] = exp / exp.sum()
    return result


def _make_interpreter(model_path: Path, runtime: str, num_threads: int) -> _Interpreter:
    if runtime == "litert":
        from ai_edge_litert.interpreter import Interpreter
    elif runtime == "tflite-runtime":
        from tflite_runtime.interpreter import Interpreter
    else:
        raise ValueError(f"unknown runtime {runtime!r}; use 'litert' or 'tflite-runtime'")
    interpreter: _Interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
    return interpreter


def _available_runtime() -> str:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return "tflite-runtime"
    return "litert"


class Classifier:
    """One loaded model. Not thread-safe: use one per thread (Lambda runs one request at a time)."""

    def __init__(
        self,
        model_dir: Path,
        *,
        num_threads: int = 1,
        runtime: str | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES,
        model_file: Path | None = None,
        input_size: int | None = None,
    ) -> None:
        """Load ``model_dir``'s model, labels and metadata; ``model_file`` swaps in another .tflite
        with the same labels (e.g. the float model, for comparison). ``input_size`` runs the file at
        another square size than it was exported at, which a network ending in a global average allows:
        for measuring what a larger input would give (the model pipeline's inference levers), not for serving."""
        metadata = json.loads((model_dir / METADATA_FILE).read_text())
        self.labels = [line for line in (model_dir / LABELS_FILE).read_text().splitlines() if line]
        runtime = runtime or _available_runtime()
        # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate" to stderr
        # in plain text; catch it so every line the process writes stays JSON.
        with capture_stderr() as printed:
            self._interpreter = _make_interpreter(model_file or model_dir / MODEL_FILE, runtime, num_threads)
            if input_size is not None:
                (exported,) = self._interpreter.get_input_details()
                self._interpreter.resize_tensor_input(exported["index"], [1, input_size, input_size, 3])
            self._interpreter.allocate_tensors()
        if printed.text:
            logger.info("inference runtime output", extra={"runtime_output": printed.text[:1000]})
        (inp,) = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        # Output order in a converted file is not guaranteed: tell logits from features by width.
        by_width = {int(o["shape"][-1]): o for o in outputs}
        if len(self.labels) not in by_width or len(outputs) > 2:
            raise ValueError(
                f"model outputs {[list(o['shape']) for o in outputs]} do not fit {len(self.labels)} labels"
            )
        out = by_width.pop(len(self.labels))
        features = next(iter(by_width.values()), None)
        self._input_index: int = inp["index"]
        self._output_index: int = out["index"]
        _, height, width, channels = (int(d) for d in inp["shape"])
        if height != width or channels != 3:
            raise ValueError(f"model input must be NHWC square RGB, got {inp['shape']}")
        # The features output and the scorer's statistics ship together; either alone is an older model.
        self._features: dict[str, Any] | None = features
        self.scorer: FlowerScorer | None = None
        if features is not None and (model_dir / SCORER_FILE).exists():
            self.scorer = FlowerScorer.load(model_dir / SCORER_FILE)
            if self.scorer.feature_size != int(features["shape"][-1]):
                raise ValueError(
                    f"{SCORER_FILE} expects {self.scorer.feature_size} features; the model gives {features['shape']}"
                )
        # A refit last layer (flowers_serving.head) replaces the file's logits; it is fitted on these features.
        self.head: Head | None = None
        if features is not None and (model_dir / HEAD_FILE).exists():
            self.head = Head.load(model_dir / HEAD_FILE)
            if self.head.feature_size != int(features["shape"][-1]) or self.head.classes != len(self.labels):
                raise ValueError(
                    f"{HEAD_FILE} maps {self.head.feature_size} features to {self.head.classes} classes; "
                    f"the model gives {list(features['shape'])} features and has {len(self.labels)} labels"
                )
        self._greyscale_matters = (self.head is not None and self.head.greyscale is not None) or (
            self.scorer is not None and self.scorer.greyscale_threshold is not None
        )
        self._input_dtype = inp["dtype"]
        # A fully int8-quantised model takes and returns int8 tensors: map pixels
        # to its input scale and its outputs back to float logits.
        self._input_quant: tuple[float, int] = tuple(inp.get("quantization", (0.0, 0)))
        self._output_quant: tuple[float, int] = tuple(out.get("quantization", (0.0, 0)))
        self.max_pixels = max_pixels
        self.max_decode_bytes = max_decode_bytes
        self.second_look_below = _second_look_below(metadata.get("second_look"))
        self.info = ModelInfo(
            name=str(metadata["name"]),
            version=str(metadata["version"]),
            input_size=height,
            runtime=runtime,
            num_threads=num_threads,
        )

    @classmethod
    def from_env(cls) -> Classifier:
        """Build from ``FLOWERS_MODEL_DIR`` / ``FLOWERS_NUM_THREADS`` / ``FLOWERS_RUNTIME`` /
        ``FLOWERS_MAX_PIXELS`` / ``FLOWERS_MAX_DECODE_BYTES``."""
        return cls(
            default_model_dir(),
            # One thread by default: a Lambda below 1,769 MB has less than one vCPU,
            # and extra threads only add contention there.
            num_threads=int(os.environ.get(ENV_NUM_THREADS, "1")),
            runtime=os.environ.get(ENV_RUNTIME) or None,
            max_pixels=int(os.environ.get(ENV_MAX_PIXELS, str(DEFAULT_MAX_PIXELS))),
            max_decode_bytes=int(os.environ.get(ENV_MAX_DECODE_BYTES, str(DEFAULT_MAX_DECODE_BYTES))),
        )

    def run(
        self, pixels: npt.NDArray[np.uint8], *, greyscale: bool | None = None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | None]:
        """Run the model on one ``(size, size, 3)`` uint8 image: calibrated logits, and features if it has them.

        The logits are the refit head's when ``head.npz`` ships beside the model (its greyscale layer for an
        image without colour, when it has one), else the file's own. ``greyscale``: whether the image has no
        colour, when the caller has already asked ``is_greyscale``."""
        batch = pixels[np.newaxis]
        scale, zero_point = self._input_quant
        if np.issubdtype(self._input_dtype, np.integer) and scale:
            info = np.iinfo(self._input_dtype)
            quantized = np.round(batch.astype(np.float32) / scale) + zero_point
            batch = np.clip(quantized, info.min, info.max)
        self._interpreter.set_tensor(self._input_index, batch.astype(self._input_dtype))
        self._interpreter.invoke()
        features = None
        if self._features is not None:
            features = _dequantize(
                self._interpreter.get_tensor(self._features["index"])[0],
                tuple(self._features.get("quantization", (0.0, 0))),
            )
        if self.head is not None and features is not None:  # the file's own logits are then not read at all
            return self.head.for_pixels(pixels, greyscale=greyscale).logits(features), features
        return _dequantize(self._interpreter.get_tensor(self._output_index)[0], self._output_quant), features

    def answer(
        self,
        pixels: npt.NDArray[np.uint8],
        *,
        greyscale: bool | None = None,
        timings: dict[str, float] | None = None,
    ) -> tuple[npt.NDArray[np.float64], FlowerScore | None]:
        """What :meth:`classify` answers for one model-sized image: the class probabilities and the not-a-flower
        verdict. The verdict is the photo's own (its features, first look); a second look (the mirror image)
        follows only for a flower whose top probability stays under the threshold: a photo that is not a
        flower has no species worth a second inference. ``timings`` gets ``infer_ms``, ``flower_score_ms`` and,
        when it ran, ``second_look_ms``, each a phase of its own."""
        times = timings if timings is not None else {}
        started = time.perf_counter()
        if greyscale is None:  # asked once, and only of a model with a use for it (a greyscale layer or threshold)
            greyscale = self._greyscale_matters and is_greyscale(pixels)
        logits, features = self.run(pixels, greyscale=greyscale)
        probs = softmax(logits)
        times["infer_ms"] = (time.perf_counter() - started) * 1000
        flower = None
        if self.scorer is not None and features is not None:
            started = time.perf_counter()
            flower = self.scorer.score(features, greyscale=greyscale)
            times["flower_score_ms"] = (time.perf_counter() - started) * 1000
        unsure = self.second_look_below is not None and probs.max() < self.second_look_below
        if not unsure or (flower is not None and not flower.is_flower):
            return probs, flower
        started = time.perf_counter()
        probs = softmax(self.with_mirror(pixels, logits, greyscale=greyscale))
        times["second_look_ms"] = (time.perf_counter() - started) * 1000
        return probs, flower

    def with_mirror(
        self, pixels: npt.NDArray[np.uint8], logits: npt.NDArray[np.float32], *, greyscale: bool | None = None
    ) -> npt.NDArray[np.float32]:
        """The second look: ``logits`` (of ``pixels``) averaged with those of the mirror image."""
        mirrored, _ = self.run(np.ascontiguousarray(pixels[:, ::-1]), greyscale=greyscale)
        result: npt.NDArray[np.float32] = ((logits + mirrored) / 2).astype(np.float32)
        return result

    def logits(self, pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Run the model on one ``(size, size, 3)`` uint8 image; calibrated logits out."""
        return self.run(pixels)[0]

    def classify(self, image: bytes, top_k: int = DEFAULT_TOP_K) -> Classification:
        """Image bytes to the ``top_k`` most probable species, most probable first."""
        if not 1 <= top_k <= MAX_TOP_K:
            raise BadRequest(f"top_k must be between 1 and {MAX_TOP_K}")
        timings: dict[str, float] = {}
        pixels = load_image(
            image,
            self.info.input_size,
            max_pixels=self.max_pixels,
            max_decode_bytes=self.max_decode_bytes,
            timings=timings,
        )
        probs, flower = self.answer(pixels, timings=timings)
        # Stable sort so ties resolve by class order, not by whatever argpartition did.
        order = np.argsort(-probs, kind="stable")[:top_k]
        predictions = [Prediction(label=self.labels[i], class_id=int(i) + 1, score=float(probs[i])) for i in order]
        return Classification(predictions=predictions, model=self.info, timings_ms=timings, flower=flower)


def _second_look_below(spec: Any) -> float | None:
    """metadata.json's ``second_look`` -> the top probability under which a photo is looked at again."""
    if spec is None:
        return None
    below = spec.get("below") if isinstance(spec, dict) else None
    if (
        not isinstance(spec, dict)
        or spec.get("view") != "mirror"
        or isinstance(below, bool)
        or not isinstance(below, int | float)
        or not 0.0 < below <= 1.0
    ):
        raise ValueError(
            f"metadata.json: second_look must be {{'view': 'mirror', 'below': a number in (0, 1]}}, got {spec!r}"
        )
    return float(below)


def _dequantize(raw: npt.NDArray[Any], quantization: tuple[float, int]) -> npt.NDArray[np.float32]:
    """An int8 tensor with its (scale, zero point) back to float; float tensors pass through."""
    scale, zero_point = quantization
    result: npt.NDArray[np.float32] = raw.astype(np.float32)
    if np.issubdtype(raw.dtype, np.integer) and scale:
        result = ((result - zero_point) * scale).astype(np.float32)
    return result
