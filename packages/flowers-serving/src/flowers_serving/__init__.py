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

from flowers_serving.classifier import Classification, Classifier, ModelInfo, Prediction
from flowers_serving.errors import ServingError
from flowers_serving.imaging import decode_image, load_image

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
