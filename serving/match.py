"""Rank a customer's candidate merchants with the matching model, or a documented heuristic.

The API gives the candidates as columns (it already knows distance, price level, kitchen
time and favourites from its own index and the profile); the scorer adds the online
features of the model's FeatureService and scores all of them in one call.

Personalisation: favourites become ``is_favourite``; the customer's taste comes from the
online features (``customer_eco_share``, ``customer_price_level_mean``). A customer without
history gets a prior from the profile instead (eco_first → eco share 1.0; price
sensitivity high/low → the usual level of quartile 1.5/3.5), so stated preferences count from
day one. The index's 1-4 price quartile reaches the model on the simulator's scale the model
learnt on (``nearx.price_levels``); the heuristic keeps the quartile.

Degraded answers (``Ranking.degraded`` holds the reason) come from :func:`heuristic_scores`:
no champion model, online store unavailable, or the scorer raising. The API also uses the
heuristic when the whole call runs over its latency budget.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from nearx.price_levels import model_price_level, model_price_levels
from serving import metrics
from serving.online import Columns, FeaturesUnavailable, OnlineFeatures
from serving.registry import LoadedModel, ModelRegistry, ModelSpec

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

RANKER_MODEL = "nearx-ranker"
RANKER_SERVICE = "ranker_v1"
CANDIDATE_COLUMNS = (
    "distance_m",
    "price_level",
    "rating",
    "prep_estimate_s",
    "eco_packaging",
    "is_favourite",
    "hour",
    "rain",
    "position",
    "eco_first",
    "price_sensitivity",
)
"""Request-time columns the scorer supplies besides the online features (``position`` is the
constant 1: a position-debiased model is asked how it would do in the first slot)."""
PRICE_SENSITIVITY = {"low": 0.0, "medium": 1.0, "high": 2.0}
_PRICE_PRIOR = {"low": model_price_level(3.5), "high": model_price_level(1.5)}
"""A customer's usual price level without history, on the models' scale (``nearx.price_levels``)."""


@dataclass(frozen=True)
class Customer:
    customer_id: str | None
    eco_first: bool = False
    price_sensitivity: str = "medium"
    local_hour: int = 12
    rain: bool = False


@dataclass(frozen=True)
class Candidates:
    """One row per candidate merchant; arrays share their length."""

    merchant_ids: list[str]
    distance_m: FloatArray
    price_level: FloatArray
    prep_estimate_s: FloatArray
    is_favourite: FloatArray
    green_possible: FloatArray
    eco_packaging: FloatArray | None = None

    def __len__(self) -> int:
        return len(self.merchant_ids)


@dataclass(frozen=True)
class Ranking:
    """Candidate positions best first, their scores, who scored them, and the features seen."""

    order: IntArray
    scores: FloatArray
    model: str | None
    version: str | None
    degraded: str | None
    features: Columns = field(default_factory=dict)

    @property
    def rating(self) -> FloatArray | None:
        return self.features.get("merchant_rating_28d")


def ranker_spec(service_features: tuple[str, ...]) -> ModelSpec:
    return ModelSpec(RANKER_MODEL, frozenset((*CANDIDATE_COLUMNS, *service_features)), ("score",))


def heuristic_scores(candidates: Candidates, customer: Customer, rating: FloatArray | None) -> FloatArray:
    """The documented fallback: near, well rated, quick kitchens, favourites, taste.

    score = -km + 1.2·(rating - 4) - prep_min/15 + 3·favourite
            + 1.0·eco_first·green_possible - w·(price_level - 1)/3, w = 0, 0.5, 1.5 by sensitivity.
    Unknown ratings count as 4.0 (neither pushed up nor down).
    """
    stars = np.full(len(candidates), 4.0) if rating is None else np.where(np.isnan(rating), 4.0, rating)
    price_weight = {"low": 0.0, "medium": 0.5, "high": 1.5}.get(customer.price_sensitivity, 0.5)
    return np.asarray(
        -candidates.distance_m / 1000.0
        + 1.2 * (stars - 4.0)
        - candidates.prep_estimate_s / 900.0
        + 3.0 * candidates.is_favourite
        + (1.0 if customer.eco_first else 0.0) * candidates.green_possible
        - price_weight * (candidates.price_level - 1.0) / 3.0,
        dtype=np.float64,
    )


class MatchScorer:
    def __init__(self, registry: ModelRegistry, online: OnlineFeatures | None) -> None:
        self.registry = registry
        self.online = online

    def rank(self, candidates: Candidates, customer: Customer, *, cached_only: bool = False) -> Ranking:
        """The model's ranking, or the heuristic's with the reason. ``cached_only``: raise
        :class:`~serving.online.NotCached` rather than read a feature row from outside this
        process (the runtime then retries on its scoring lane)."""
        started = time.perf_counter()
        model = self.registry.get(RANKER_MODEL)
        features: Columns = {}
        reason: str | None = None
        if self.online is None:
            reason = "features_unavailable"
        else:
            try:
                features = self._features(model, candidates, customer, cached_only)
            except FeaturesUnavailable:
                reason = "features_unavailable"
        if model is None:
            reason = "no_model"
        ranking: Ranking | None = None
        if reason is None and model is not None:
            try:
                scores = self._model_scores(model, candidates, customer, features)
                ranking = _ranked(scores, model.name, model.version, None, features)
                metrics.SCORED.labels(model.name, model.version).inc()
            except Exception:  # a model that cannot score this request must not fail it
                reason = "model_error"
        if ranking is None:
            assert reason is not None
            metrics.DEGRADED.labels("match", reason).inc()
            rating = features.get("merchant_rating_28d")
            ranking = _ranked(heuristic_scores(candidates, customer, rating), None, None, reason, features)
        metrics.SCORING_SECONDS.labels("match").observe(time.perf_counter() - started)
        return ranking

    def _features(
        self, model: LoadedModel | None, candidates: Candidates, customer: Customer, cached_only: bool
    ) -> Columns:
        assert self.online is not None
        service = (model.feature_service if model else None) or RANKER_SERVICE
        keys = {
            "merchant_id": candidates.merchant_ids,
            "customer_id": [customer.customer_id or ""] * len(candidates),
        }
        return self.online.get(service, keys, cached_only=cached_only)

    def _model_scores(
        self, model: LoadedModel, candidates: Candidates, customer: Customer, features: Columns
    ) -> FloatArray:
        n = len(candidates)
        columns: dict[str, FloatArray] = {**features, **_request_columns(candidates, customer, features)}
        scores = np.asarray(model.predict_columns(columns)["score"], dtype=np.float64)  # no frames
        if scores.shape != (n,):
            raise ValueError(f"the ranker returned {scores.shape} scores for {n} candidates")
        return scores


def _request_columns(
    candidates: Candidates, customer: Customer, features: Mapping[str, FloatArray]
) -> Columns:
    n = len(candidates)
    rating = features.get("merchant_rating_28d", np.full(n, np.nan))
    eco_share = features.get("customer_eco_share", np.full(n, np.nan))
    price_mean = features.get("customer_price_level_mean", np.full(n, np.nan))
    eco_prior = 1.0 if customer.eco_first else np.nan
    price_prior = _PRICE_PRIOR.get(customer.price_sensitivity, np.nan)
    return {
        "distance_m": candidates.distance_m,
        "price_level": model_price_levels(
            candidates.price_level
        ),  # the index's quartile on the models' scale
        "rating": rating,
        "prep_estimate_s": candidates.prep_estimate_s,
        "eco_packaging": candidates.eco_packaging
        if candidates.eco_packaging is not None
        else np.full(n, np.nan),
        "is_favourite": candidates.is_favourite,
        "hour": np.full(n, float(customer.local_hour)),
        "rain": np.full(n, 1.0 if customer.rain else 0.0),
        "position": np.ones(n),
        "eco_first": np.full(n, 1.0 if customer.eco_first else 0.0),
        "price_sensitivity": np.full(n, PRICE_SENSITIVITY.get(customer.price_sensitivity, 1.0)),
        "customer_eco_share": np.where(np.isnan(eco_share), eco_prior, eco_share),
        "customer_price_level_mean": np.where(np.isnan(price_mean), price_prior, price_mean),
    }


def _ranked(
    scores: FloatArray, model: str | None, version: str | None, degraded: str | None, features: Columns
) -> Ranking:
    order: IntArray = np.argsort(-scores, kind="stable").astype(np.int64)
    return Ranking(order, scores, model, version, degraded, features)
