"""CloudWatch metrics for every request, in Embedded Metric Format, through Powertools Metrics.

:func:`record` turns one request's outcome into one EMF line on stdout (plus one
per error, carrying its code as a dimension). CloudWatch Logs extracts the
metrics from the function's log stream: no API call, no agent, nothing added
to the request's latency but a ``print``. Namespace and the ``service``
dimension come from Powertools' own ``POWERTOOLS_METRICS_NAMESPACE`` and
``POWERTOOLS_SERVICE_NAME``, which the SAM template sets.

Metrics (dimension ``service``; rates are 0/1 per request, so their average is
the rate and their sum the count):

* ``Requests``; ``ServerError`` (5xx) and ``ClientError`` (4xx) rates;
* ``Latency`` and, per phase, ``FetchLatency``, ``DecodeLatency``,
  ``PreprocessLatency``, ``InferenceLatency`` (ms), for the phases the request
  went through;
* ``NotFlower`` rate, for results that say whether the image shows a flower;
* ``ColdStart``: 1 on the first request of an execution environment;
* ``Images``: images in the request (1, or a batch's size): its sum is the
  images served, its average the batch size;
* ``Errors`` with dimensions ``service`` and ``code``: one per error.

A batch (``items``) is one request whose images count one by one: the error
rates, ``NotFlower`` and the phase latencies get one sample per item (so the
5xx alarm sees the share of images failing, as for single requests), the
``Errors`` one count per failed item; ``Requests``, ``Latency`` and
``ColdStart`` stay per request. Still one EMF line, plus one per error code.

Off unless ``POWERTOOLS_METRICS_NAMESPACE`` is set, and a no-op without the
``metrics`` extra (``aws-lambda-powertools``): local runs and tests print only
the request log line. A metrics failure is logged once and never fails a request.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    from aws_lambda_powertools.metrics import Metrics

__all__ = ["Item", "enabled", "record"]

NAMESPACE_ENV: Final = "POWERTOOLS_METRICS_NAMESPACE"
#: Timings keys (as the classifier and handler report them) to metric names. Each name is a custom metric
#: billed per month, so a new phase gets a metric on purpose, not by accident.
PHASES: Final = {
    "fetch_ms": "FetchLatency",
    "decode_ms": "DecodeLatency",
    "preprocess_ms": "PreprocessLatency",
    "infer_ms": "InferenceLatency",
    "total_ms": "Latency",
}
# Error codes become a dimension: only our own short snake_case codes, so nothing a caller sends can mint metrics.
_CODE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")

logger = logging.getLogger("flowers_serving.metrics")
_state = {"cold": True, "failed": False}


class Item(NamedTuple):
    """One image of a batch: its status and error code (None: answered), phase timings (ms), flower verdict."""

    status: int
    error_code: str | None
    timings: Mapping[str, float]
    is_flower: bool | None


def enabled() -> bool:
    return bool(os.environ.get(NAMESPACE_ENV)) and _powertools() is not None


def record(
    status: int,
    error_code: str | None,
    timings: Mapping[str, float] | None,
    is_flower: bool | None,
    *,
    items: Sequence[Item] | None = None,
) -> None:
    """Emit the metrics of one request (``timings`` in ms, keys as in :data:`PHASES`; ``items``: a batch's)."""
    cold, _state["cold"] = _state["cold"], False
    if not enabled():
        return
    try:
        _emit(status, error_code, timings or {}, is_flower, cold, items or ())
    except Exception:  # metrics are best effort: the reply matters more
        if not _state["failed"]:
            _state["failed"] = True
            logger.exception("metrics: could not emit; further failures are not logged")


def _emit(
    status: int,
    error_code: str | None,
    timings: Mapping[str, float],
    is_flower: bool | None,
    cold: bool,
    items: Sequence[Item],
) -> None:
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    count = MetricUnit.Count
    metrics = _metrics()
    metrics.add_metric(name="Requests", unit=count, value=1)
    metrics.add_metric(name="ColdStart", unit=count, value=int(cold))
    metrics.add_metric(name="Images", unit=count, value=len(items) or 1)
    _latency(metrics, "total_ms", timings)
    # Per image: the request itself, or each item of a batch (add_metric appends: one sample per call).
    errors: Counter[str] = Counter()
    for image in items or [Item(status, error_code, timings, is_flower)]:
        metrics.add_metric(name="ServerError", unit=count, value=int(image.status >= 500))
        metrics.add_metric(name="ClientError", unit=count, value=int(400 <= image.status < 500))
        for key in PHASES:
            if key != "total_ms":
                _latency(metrics, key, image.timings)
        if image.is_flower is not None:
            metrics.add_metric(name="NotFlower", unit=count, value=int(not image.is_flower))
        if "infer_ms" in image.timings:  # a classified image: did it take the second look (a second inference)?
            metrics.add_metric(name="SecondLook", unit=count, value=int("second_look_ms" in image.timings))
        if image.error_code:
            errors[image.error_code if _CODE.fullmatch(image.error_code) else "other"] += 1
    metrics.flush_metrics()
    for code, n in sorted(errors.items()):
        with single_metric(name="Errors", unit=count, value=n) as metric:
            metric.add_dimension(name="code", value=code)


def _latency(metrics: Metrics, key: str, timings: Mapping[str, float]) -> None:
    from aws_lambda_powertools.metrics import MetricUnit

    value = timings.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        metrics.add_metric(name=PHASES[key], unit=MetricUnit.Milliseconds, value=float(value))


@functools.cache
def _powertools() -> ModuleType | None:
    try:
        import aws_lambda_powertools.metrics as powertools
    except ImportError:
        return None
    return powertools


@functools.cache
def _metrics() -> Metrics:
    from aws_lambda_powertools.metrics import Metrics

    return Metrics()


# Pay the import at initialisation (the cold start), not on the first request.
if os.environ.get(NAMESPACE_ENV):
    _powertools()
