"""A small Kathmandu for matching: merchants in PostgreSQL, a real ranker in MLflow, features in Feast.

The MLflow registry and the Feast repo are built once per module under one ``NEARX_HOME``
(training and registering take seconds); every test gets a fresh database whose merchants
have the same ids, so the online features written once match them.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from litestar import Litestar

from features.store import apply_repo, open_store
from nearx.geo import h3_cells
from nearx.settings import Settings, load_settings
from serving.match import RANKER_MODEL
from serving.runtime import tracking_uri
from tests.serving.conftest import merchant_feature_rows
from tests.serving.trained import register, train_ranker

CENTRE = (27.7000, 85.3200)
MERCHANTS = 30
NAMESPACE = uuid.UUID("0190b5d2-6f00-7000-8000-00000000abcd")


def merchant_id(i: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"merchant-{i}")


@dataclass(frozen=True)
class ServingHome:
    root: Path
    uri: str


def serving_settings(root: Path) -> Settings:
    # a generous budget: what a test ranks must not depend on this machine's speed (budget tests set 0)
    return load_settings(
        {"NEARX_HOME": str(root), "NEARX_DB_POOL_MAX_SIZE": "20", "NEARX_SCORING_BUDGET_MS": "10000"}
    )


@pytest.fixture(scope="module")
def serving_home(tmp_path_factory: pytest.TempPathFactory) -> ServingHome:
    root = tmp_path_factory.mktemp("serving-home")
    settings = serving_settings(root)
    uri = tracking_uri(settings)
    (root / "mlflow").mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    artifacts = (root / "mlflow" / "artifacts").as_uri()
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("ranker", artifact_location=artifacts))
    register(uri, RANKER_MODEL, train_ranker(seed=11), tags={"feature_service": "ranker_v1"})
    store = open_store(settings)
    apply_repo(store)
    store.write_to_online_store(
        "merchant_stats", merchant_feature_rows([str(merchant_id(i)) for i in range(MERCHANTS)], seed=3)
    )
    return ServingHome(root, uri)


@pytest.fixture
def settings(serving_home: ServingHome) -> Settings:
    """The module's home: its MLflow registry and Feast repo are what the app's runtime loads."""
    return serving_settings(serving_home.root)


async def insert_city(conn: Any, *, paused: int | None = None, pending: int | None = None) -> uuid.UUID:
    """``MERCHANTS`` approved merchants spiralling out of the centre (restaurants, every 3rd a grocery)."""
    owner = uuid.uuid4()
    await conn.execute("INSERT INTO users (id) VALUES (%s)", (owner,))
    rng = np.random.default_rng(5)
    for i in range(MERCHANTS):
        angle, radius_deg = rng.uniform(0, 2 * np.pi), 0.002 + 0.0008 * i
        lat, lng = CENTRE[0] + radius_deg * np.sin(angle), CENTRE[1] + radius_deg * np.cos(angle)
        cells = h3_cells(lat, lng, (7, 9))
        r7, r9 = cells[7], cells[9]
        status = "pending" if i == pending else "approved"
        await conn.execute(
            """
            INSERT INTO merchants (id, city_id, kind, category, name, owner_user_id, status, lat, lng,
                                   h3_r7, h3_r9, delivery_radius_m, prep_time_min, paused)
            VALUES (%s, 'kathmandu', 'merchant', %s, %s, %s, %s, %s, %s, %s, %s, 8000, %s, %s)
            """,
            (
                merchant_id(i),
                "grocery" if i % 3 == 0 else "restaurant",
                f"Merchant {i}" + (" Momo House" if i % 5 == 0 else ""),
                owner,
                status,
                lat,
                lng,
                r7,
                r9,
                10 + (i * 7) % 30,
                i == paused,
            ),
        )
    return owner


async def ready(app: Litestar) -> None:
    """What the background tasks do within seconds: reload the index, poll the registry."""
    await app.state.matching_index.reload()
    await asyncio.to_thread(app.state.scoring.refresh)
