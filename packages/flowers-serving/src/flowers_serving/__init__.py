"""flowers-serving: classify flower photos on AWS Lambda.

The public surface:

* :class:`Classifier` / :class:`Classification` / :class:`Prediction`: the pure
  core (image bytes in, top-k predictions out), free of Lambda and HTTP;
* :func:`load_image`: the one image-loading function, shared with evaluation;
* :mod:`flowers_serving.errors`: every failure with its stable code and status;
* ``flowers_serving.handler.lambda_handler``: the Lambda entry point (import it
  by path: importing it loads the model);
* ``flowers_serving.local``: the local stack (real RIE + API Gateway front).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowers_serving.classifier import Classification, Classifier, ModelInfo, Prediction
    from flowers_serving.errors import ServingError
    from flowers_serving.imaging import decode_image, load_image

# Imported on first use: `flowers-serve` (flowers_serving.local) must report a busy port
# at once, without paying for numpy, Pillow and the inference runtime first.
_LAZY = {
    "Classification": "flowers_serving.classifier",
    "Classifier": "flowers_serving.classifier",
    "ModelInfo": "flowers_serving.classifier",
    "Prediction": "flowers_serving.classifier",
    "ServingError": "flowers_serving.errors",
    "decode_image": "flowers_serving.imaging",
    "load_image": "flowers_serving.imaging",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flowers_serving' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Classification",
    "Classifier",
    "ModelInfo",
    "Prediction",
    "ServingError",
    "__version__",
    "decode_image",
    "load_image",
]

__version__ = "1.0.0"
