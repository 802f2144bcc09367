"""Real small models for serving tests: LightGBM on a synthetic city, registered in a local MLflow.

The ranker learns what the simulator's customers do: nearer, better rated, faster kitchens and
favourites get ordered; eco-minded customers prefer eco packaging. Each call registers a new
version and (optionally) moves ``champion`` to it, which is what a hot swap is made of.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import polars as pl
from mlflow.models import infer_signature

from models.frames import FloatArray, TimeSplit, time_split
from models.ranker import RankerModel

RANKER_INPUTS = (
    "distance_m",
    "price_level",
    "rating",
    "prep_estimate_s",
    "is_favourite",
    "eco_packaging",
    "customer_eco_share",
    "customer_price_level_mean",
    "merchant_orders_28d",
)


def synthetic_sessions(
    seed: int, sessions: int = 300, per_session: int = 12
) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = sessions * per_session
    frame = pd.DataFrame(
        {
            "distance_m": rng.uniform(100, 5000, n),
            "price_level": rng.integers(1, 5, n).astype(float),
            "rating": rng.uniform(3.0, 5.0, n),
            "prep_estimate_s": rng.uniform(300, 2400, n),
            "is_favourite": (rng.random(n) < 0.1).astype(float),
            "eco_packaging": (rng.random(n) < 0.3).astype(float),
            "customer_eco_share": np.repeat(rng.random(sessions), per_session),
            "customer_price_level_mean": np.repeat(rng.uniform(1, 4, sessions), per_session),
            "merchant_orders_28d": rng.uniform(0, 500, n),
        }
    )
    utility = (
        -frame["distance_m"] / 1000
        + 1.5 * frame["rating"]
        - frame["prep_estimate_s"] / 900
        + 4.0 * frame["is_favourite"]
        + 2.0 * frame["eco_packaging"] * frame["customer_eco_share"]
        - 0.8 * np.abs(frame["price_level"] - frame["customer_price_level_mean"])
    )
    noisy = utility + rng.normal(0, 0.3, n)
    ranks = pd.Series(noisy).groupby(np.repeat(np.arange(sessions), per_session)).rank(ascending=False)
    relevance = np.where(ranks <= 1, 2, np.where(ranks <= 3, 1, 0))
    return frame, relevance


def train_ranker(seed: int = 1, n_estimators: int = 40) -> lgb.LGBMRanker:
    frame, relevance = synthetic_sessions(seed)
    model = lgb.LGBMRanker(n_estimators=n_estimators, num_leaves=15, min_child_samples=5, verbose=-1)
    model.fit(frame, relevance, group=[12] * (len(frame) // 12))
    return model


def register(
    tracking_uri: str,
    name: str,
    model: lgb.LGBMModel,
    inputs: Sequence[str] = RANKER_INPUTS,
    *,
    promote: bool = True,
    tags: dict[str, str] | None = None,
) -> str:
    """Log and register ``model`` as a new version of ``name``; point ``champion`` at it if asked."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    example = synthetic_sessions(0, sessions=1)[0].loc[:, list(RANKER_INPUTS)]
    example.columns = list(inputs)  # a signature may rename what the booster reads by position
    with mlflow.start_run():
        info = mlflow.lightgbm.log_model(
            model.booster_,  # the native booster: saved in LightGBM's own format, no pickle
            name="model",
            signature=infer_signature(example, model.booster_.predict(example.to_numpy())),
            registered_model_name=name,
            pip_requirements=["lightgbm"],  # explicit: inferring them loads the model in a subprocess
        )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    for key, value in (tags or {}).items():
        client.set_model_version_tag(name, version, key, value)
    if promote:
        client.set_registered_model_alias(name, "champion", version)
    return version


def ranker_split(seed: int = 4, sessions: int = 200, per_session: int = 10) -> TimeSplit:
    """Sessions for ``models.ranker.train_ranker``: its row features, the customer's taste, one
    merchant feature and a category (encoded like the real categoricals), some values missing."""
    frame, relevance = synthetic_sessions(seed, sessions, per_session)
    rng = np.random.default_rng(seed)
    n = len(frame)
    frame["hour"] = np.repeat(rng.integers(8, 23, sessions), per_session).astype(float)
    frame["rain"] = np.repeat(rng.random(sessions) < 0.2, per_session).astype(float)
    frame["merchant_category"] = rng.choice(["restaurant", "grocery", "cafe"], n)
    for column in ("customer_eco_share", "customer_price_level_mean", "eco_packaging", "rating"):
        frame.loc[rng.random(n) < 0.15, column] = np.nan  # no history, unknown trait
    frame.loc[rng.random(n) < 0.1, "merchant_category"] = None
    rows = pl.from_pandas(frame).with_columns(
        session_id=pl.Series(np.repeat(np.arange(sessions), per_session)),
        event_timestamp=pl.Series(np.repeat(np.arange(sessions), per_session)).cast(pl.Datetime("us")),
        relevance=pl.Series(relevance),
    )
    return time_split(rows, "event_timestamp")


def wrapper_before_the_fast_path(model: RankerModel, model_input: pd.DataFrame) -> FloatArray:
    """The reference: ``RankerModel.predict`` as it was (Polars personalisation, the sklearn ranker)."""
    data = pl.from_pandas(model_input).with_columns(
        eco_match=pl.col("eco_packaging") * pl.col("customer_eco_share").fill_null(0.0),
        price_gap=pl.col("price_level") - pl.col("customer_price_level_mean").fill_null(1.0),
    )
    return np.asarray(model.ranker.predict(model.matrix.to_pandas(data.to_pandas())), dtype=np.float64)
