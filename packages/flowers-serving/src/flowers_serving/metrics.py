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
* ``Errors`` with dimensions ``service`` and ``code``: one per error.

Off unless ``POWERTOOLS_METRICS_NAMESPACE`` is set, and a no-op without the
``metrics`` extra (``aws-lambda-powertools``): local runs and tests print only
the request log line. A metrics failure is logged once and never fails a request.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from aws_lambda_powertools.metrics import Metrics

__all__ = ["enabled", "record"]

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


def enabled() -> bool:
    return bool(os.environ.get(NAMESPACE_ENV)) and _powertools() is not None


def record(status: int, error_code: str | None, timings: Mapping[str, float] | None, is_flower: bool | None) -> None:
    """Emit the metrics of one request (``timings`` in ms, keys as in :data:`PHASES`)."""
    cold, _state["cold"] = _state["cold"], False
    if not enabled():
        return
    try:
        _emit(status, error_code, timings or {}, is_flower, cold)
    except Exception:  # metrics are best effort: the reply matters more
        if not _state["failed"]:
            _state["failed"] = True
            logger.exception("metrics: could not emit; further failures are not logged")


def _emit(
    status: int, error_code: str | None, timings: Mapping[str, float], is_flower: bool | None, cold: bool
) -> None:
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    count = MetricUnit.Count
    metrics = _metrics()
    metrics.add_metric(name="Requests", unit=count, value=1)
    metrics.add_metric(name="ServerError", unit=count, value=int(status >= 500))
    metrics.add_metric(name="ClientError", unit=count, value=int(400 <= status < 500))
    metrics.add_metric(name="ColdStart", unit=count, value=int(cold))
    for key, name in PHASES.items():
        value = timings.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            metrics.add_metric(name=name, unit=MetricUnit.Milliseconds, value=float(value))
    if is_flower is not None:
        metrics.add_metric(name="NotFlower", unit=count, value=int(not is_flower))
    metrics.flush_metrics()
    if error_code:
        code = error_code if _CODE.fullmatch(error_code) else "other"
        with single_metric(name="Errors", unit=count, value=1) as metric:
            metric.add_dimension(name="code", value=code)


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
