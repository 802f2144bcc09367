"""Dispatch rounds and the customer's door ETA from the ETA and green models.

Plugged into delivery's :func:`~api.domains.delivery.eta.city_eta` by the app's lifespan:
every round and ETA refresh of this process then asks :class:`serving.dispatch.ModelEta`
(routing when the models cannot answer). Processes without the serving runtime (``nearx
dispatch run``) keep the routing provider.
"""

from __future__ import annotations

from typing import Any

from api.domains.delivery.eta import PredictorFactory, Promises
from nearx.dispatch import EtaPredictor
from serving.dispatch import ModelEta
from serving.runtime import ScoringRuntime


def model_predictors(runtime: ScoringRuntime) -> PredictorFactory:
    def predictor(city: dict[str, Any], promises: Promises) -> EtaPredictor:
        scorer = runtime.eta_scorer(city["id"], city["timezone"], str(city["country"]).strip())
        return ModelEta(scorer, city["timezone"], promises)

    return predictor
