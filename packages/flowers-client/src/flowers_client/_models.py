"""Result models (pydantic v2), shared by the sync and async clients, and :func:`top_k`.

A batch yields :data:`BatchItem` values: a :class:`BatchSuccess` (``ok`` is
``True``, ``result`` is set) or a :class:`BatchFailure` (``ok`` is ``False``,
``error`` is set). ``ok`` is a literal on each, so ``if item.ok:`` narrows the
type under mypy and pyright. Both serialise to JSON (``model_dump_json``) and
back (``BATCH_ITEM.validate_json``); an error becomes
``{type, code, status, message, request_id}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    field_serializer,
    field_validator,
)

from flowers_client import _exceptions
from flowers_client._exceptions import APIError, FlowersError, FunctionError, NotAFlowerError, UpstreamError
from flowers_client._response import RawResponse

__all__ = [
    "BATCH_ITEM",
    "BatchFailure",
    "BatchItem",
    "BatchSuccess",
    "ClassifyResult",
    "Prediction",
    "error_from_dict",
    "top_k",
]


class Prediction(BaseModel):
    """One species and its calibrated probability."""

    model_config = ConfigDict(frozen=True, extra="allow")

    label: str
    class_id: int = Field(ge=1, le=102, description="the official Oxford 102 label, 1-102")
    score: float = Field(ge=0.0, le=1.0)


class ClassifyResult(BaseModel):
    """The service's answer for one image; unknown fields are kept, not rejected.

    ``is_flower`` and ``flower_score`` are ``None`` from a service that does not
    send them yet.
    """

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    predictions: list[Prediction]
    model: str
    model_version: str
    request_id: str | None = None
    timings_ms: dict[str, float] = Field(default_factory=dict)
    is_flower: bool | None = Field(
        default=None, description="the photo shows one of the 102 species, at the model's threshold"
    )
    flower_score: float | None = Field(
        default=None, ge=0.0, le=1.0, description="higher: more likely one of the 102 species"
    )
    _raw_response: RawResponse | None = PrivateAttr(default=None)

    @property
    def best(self) -> Prediction:
        """The most probable prediction (by score, not by position)."""
        if not self.predictions:
            raise ValueError("the result has no predictions")
        return max(self.predictions, key=lambda p: p.score)

    @property
    def raw_response(self) -> RawResponse | None:
        """The HTTP reply this result was parsed from (``None`` if built by hand)."""
        return self._raw_response


class BatchSuccess(BaseModel):
    """One input of a batch that was classified."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(description="the input's position in the batch, from 0")
    input: str = Field(description="the input as given: a path, a URL or <N bytes>")
    ok: Literal[True] = True
    result: ClassifyResult

    @property
    def error(self) -> None:
        return None


class BatchFailure(BaseModel):
    """One input of a batch that failed, with the error it raised."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    index: int
    input: str
    ok: Literal[False] = False
    error: FlowersError

    @property
    def result(self) -> None:
        return None

    @field_serializer("error")
    def _dump_error(self, error: FlowersError) -> dict[str, Any]:
        return error.to_dict()

    @field_validator("error", mode="before")
    @classmethod
    def _load_error(cls, value: object) -> object:
        return error_from_dict(value) if isinstance(value, dict) else value


BatchItem = Annotated[BatchSuccess | BatchFailure, Field(discriminator="ok")]
#: Validates a :data:`BatchItem` from a dict or JSON: ``BATCH_ITEM.validate_json(line)``.
BATCH_ITEM: TypeAdapter[BatchSuccess | BatchFailure] = TypeAdapter(BatchItem)


def error_from_dict(data: dict[str, Any]) -> FlowersError:
    """Rebuild an error from its :meth:`~FlowersError.to_dict` form (unknown types become ``FlowersError``)."""
    name = str(data.get("type") or "")
    cls: type[FlowersError] = getattr(_exceptions, name) if name in _exceptions.__all__ else FlowersError
    message = str(data.get("message") or "")
    request_id = data.get("request_id")
    if issubclass(cls, FunctionError):
        return cls(message, error_type=data.get("code"), request_id=request_id)
    if not issubclass(cls, APIError):
        return cls(message)
    fields: dict[str, Any] = {"status_code": data.get("status"), "code": data.get("code"), "request_id": request_id}
    if issubclass(cls, NotAFlowerError):
        predictions = [Prediction.model_validate(p) for p in data.get("predictions") or []]
        return cls(message, flower_score=data.get("flower_score"), predictions=predictions, **fields)
    if issubclass(cls, UpstreamError):
        return cls(message, upstream_status=data.get("upstream_status"), **fields)
    return cls(message, **fields)


def top_k(
    result_or_predictions: ClassifyResult | Sequence[Prediction], k: int, *, min_score: float = 0.0
) -> list[Prediction]:
    """The ``k`` highest-scoring predictions with ``score >= min_score``, best first."""
    if k < 0:
        raise ValueError("k must be >= 0")
    predictions = (
        result_or_predictions.predictions
        if isinstance(result_or_predictions, ClassifyResult)
        else result_or_predictions
    )
    ranked = sorted(predictions, key=lambda p: (-p.score, p.class_id))
    return [p for p in ranked if p.score >= min_score][:k]
