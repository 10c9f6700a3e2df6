"""Result models (pydantic v2) and the :func:`top_k` helper."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from flowers_client._exceptions import FlowersError

__all__ = ["BatchItem", "ClassifyResult", "Prediction", "top_k"]


class Prediction(BaseModel):
    """One species and its calibrated probability."""

    model_config = ConfigDict(frozen=True, extra="allow")

    label: str
    class_id: int = Field(ge=1, le=102, description="the official Oxford 102 label, 1-102")
    score: float = Field(ge=0.0, le=1.0)


class ClassifyResult(BaseModel):
    """The service's answer for one image; unknown fields are kept, not rejected."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    predictions: list[Prediction]
    model: str
    model_version: str
    request_id: str | None = None
    timings_ms: dict[str, float] = Field(default_factory=dict)

    @property
    def best(self) -> Prediction:
        """The most probable prediction (by score, not by position)."""
        if not self.predictions:
            raise ValueError("the result has no predictions")
        return max(self.predictions, key=lambda p: p.score)


class BatchItem(BaseModel):
    """One input of :meth:`FlowersClient.classify_many`: a result or the error it raised."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: int
    input: str
    result: ClassifyResult | None = None
    error: FlowersError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


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
