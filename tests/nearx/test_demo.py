"""The demo city of ``nearx up``: seeded through the services from the simulator, found by search
and matching, and idempotent; and ``nearx up`` runs every step (the pipeline through training)
before it serves."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient
from psycopg.rows import dict_row
from typer.testing import CliRunner

import nearx.cli
from api.app import create_app
from api.security.principal import Principal, Role
from nearx.cli import app
from nearx.clock import utc_now
from nearx.ids import new_id
from nearx.settings import Settings, get_settings, load_settings

runner = CliRunner()
SMALL = ["--orders", "700", "--days", "7"]
"""100 simulated orders a day: the simulator's smallest city (25 merchants, 10 providers, 20 couriers)."""
THAMEL = {"lat": 27.7154, "lng": 85.3123}
COUNTS = {
    "merchants": "SELECT kind, status, count(*) AS n FROM merchants GROUP BY 1, 2 ORDER BY 1, 2",
    "products": "SELECT count(*) AS n FROM products",
    "stock": "SELECT count(*) AS n, min(on_hand) AS low FROM inventory",
    "hours": "SELECT count(DISTINCT merchant_id) AS n FROM merchant_hours",
    "calendars": "SELECT count(*) AS n FROM provider_calendars",
    "services": "SELECT count(*) AS n FROM service_listings",
    "couriers": "SELECT status, shift, count(*) AS n FROM couriers GROUP BY 1, 2",
    "positions": "SELECT count(*) AS n FROM courier_positions",
    "users": "SELECT count(*) AS n FROM users",
    "addresses": "SELECT count(*) AS n FROM addresses",
}


@pytest.fixture
def demo_db(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The CLI's settings pointed at this test's own migrated database."""
    monkeypatch.setenv("NEARX_DATABASE_URL", db_url)
    monkeypatch.setenv("NEARX_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


def _counts(url: str) -> dict[str, list[dict[str, Any]]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return {name: conn.execute(sql).fetchall() for name, sql in COUNTS.items()}


def _customer_headers(app: Any, user_id: uuid.UUID) -> dict[str, str]:
    principal = Principal(user_id=user_id, roles=frozenset({Role.CUSTOMER}), session_id=new_id())
    return {"Authorization": f"Bearer {app.state.token_codec.issue(principal, now=utc_now())}"}


async def test_demo_seed_is_searchable_matchable_and_idempotent(demo_db: str, tmp_path: Path) -> None:
    first = await asyncio.to_thread(runner.invoke, app, ["demo", "seed", *SMALL])  # the CLI runs its own loop
    assert first.exit_code == 0, first.output
    assert "25 merchant(s)" in first.output
    assert "10 provider(s)" in first.output
    seeded = _counts(demo_db)
    assert seeded["merchants"] == [
        {"kind": "merchant", "status": "approved", "n": 25},
        {"kind": "provider", "status": "approved", "n": 10},
    ]
    assert seeded["hours"] == [{"n": 25}]
    assert seeded["calendars"] == [{"n": 10}]
    assert seeded["products"][0]["n"] >= 25 * 3
    assert seeded["stock"][0]["low"] > 0
    assert seeded["services"][0]["n"] >= 10
    assert seeded["couriers"] == [{"status": "approved", "shift": "online", "n": 20}]
    assert seeded["positions"] == [{"n": 20}]
    assert seeded["addresses"] == [{"n": 1}]

    again = await asyncio.to_thread(runner.invoke, app, ["demo", "seed", *SMALL])
    assert again.exit_code == 0, again.output
    assert "seeded nothing new" in again.output
    assert _counts(demo_db) == seeded

    settings: Settings = load_settings({"NEARX_HOME": str(tmp_path / "home")})
    api = create_app(settings, db_url=demo_db)
    with psycopg.connect(demo_db, row_factory=dict_row) as conn:
        row = conn.execute("SELECT id FROM users WHERE phone = %s", ("+9779801234567",)).fetchone()
        merchants = {r["id"] for r in conn.execute("SELECT id FROM merchants").fetchall()}
    assert row is not None  # the demo customer, who signs in with the README's number
    async with AsyncTestClient(app=api) as client:
        headers = _customer_headers(api, row["id"])
        search = await client.get(
            "/v1/catalog/search", params={"q": "momo", **THAMEL, "radius_m": 25_000}, headers=headers
        )
        assert search.status_code == 200, search.text
        hits = search.json()["items"]
        assert hits
        assert all("momo" in hit["name"].lower() for hit in hits)

        match = await client.get("/v1/match", params={**THAMEL, "radius_m": 10_000}, headers=headers)
        assert match.status_code == 200, match.text
        results = match.json()["results"]
        assert results
        assert {uuid.UUID(r["merchant_id"]) for r in results} <= merchants
        assert {hit["merchant_id"] for hit in hits} <= {str(m) for m in merchants}

        # a provider's calendar gives open slots a week ahead (every provider works some weekday)
        with psycopg.connect(demo_db, row_factory=dict_row) as conn:
            listing = conn.execute(
                "SELECT s.id, s.merchant_id FROM service_listings s ORDER BY s.id LIMIT 1"
            ).fetchone()
        assert listing is not None
        week = [utc_now().date() + timedelta(days=offset) for offset in range(2, 9)]
        open_slots = [
            (
                await client.get(
                    f"/v1/providers/{listing['merchant_id']}/slots",
                    params={"date": day.isoformat(), "service_id": str(listing["id"])},
                    headers=headers,
                )
            ).json()
            for day in week
        ]
        assert any(open_slots)


def _online_for_seeded_merchants(settings: Settings, db: str) -> dict[str, set[str]]:
    """The seeded merchants with simulated orders, and those the Feast online store answers (by
    platform id) with a merchant order count."""
    import polars as pl

    from features.store import online, open_store
    from pipelines.resources import lake_path
    from pipelines.staging import staging_path

    with psycopg.connect(db) as conn:
        kinds = conn.execute("SELECT platform_id::text, kind FROM demo_entities").fetchall()
    seeded: dict[str, str] = dict(kinds)
    merchants = [platform for platform, kind in seeded.items() if kind == "merchant"]
    (customer,) = (platform for platform, kind in seeded.items() if kind == "customer")
    orders = pl.read_parquet(staging_path(lake_path(settings), "orders"), columns=["merchant_id"])
    with_history = set(orders.filter(pl.col("merchant_id").is_in(merchants))["merchant_id"].to_list())
    rows = [{"merchant_id": merchant, "customer_id": customer} for merchant in merchants]
    features = online(open_store(settings), "ranker_v1", rows)
    answered = features.filter(pl.col("merchant_orders_28d").is_not_null())["merchant_id"]
    return {"with_history": with_history, "with_features": set(answered.to_list())}


async def _matches(settings: Settings, db: str) -> list[dict[str, Any]]:
    """Two ``/v1/match`` pages for the demo customer once the scoring runtime has polled, as the
    first requests after ``up`` would be (the first reads Feast cold)."""
    api = create_app(settings, db_url=db)
    with psycopg.connect(db, row_factory=dict_row) as conn:
        row = conn.execute("SELECT id FROM users WHERE phone = %s", ("+9779801234567",)).fetchone()
    assert row is not None
    async with AsyncTestClient(app=api) as client:
        await asyncio.to_thread(api.state.scoring.refresh)  # the runtime's first poll: champions, store
        headers = _customer_headers(api, row["id"])
        pages = []
        for _ in range(2):
            match = await client.get("/v1/match", params={**THAMEL, "radius_m": 10_000}, headers=headers)
            assert match.status_code == 200, match.text
            pages.append(match.json())
    return pages


@pytest.mark.slow
def test_up_migrates_seeds_runs_the_whole_pipeline_and_then_serves(
    pg_admin_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an empty database ``up`` migrates, seeds, and runs the graph through the ML stage before it
    hands the URL to the server: serving is the one step replaced, by a probe of what it would find."""
    from models.tracking import CHAMPION, configure
    from nearx.postgres import drop_database, ensure_database, with_database

    name = f"nearx_up_{uuid.uuid4().hex[:10]}"
    ensure_database(pg_admin_url, name)
    url = with_database(pg_admin_url, name)
    monkeypatch.setenv("NEARX_DATABASE_URL", url)
    monkeypatch.setenv("NEARX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    (tmp_path / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    get_settings.cache_clear()
    served: list[dict[str, Any]] = []

    def probe(settings: Settings, db: str, host: str | None, port: int | None) -> None:
        client = configure(settings)
        served.append(
            {
                "db": db,
                "counts": _counts(db),
                "champions": {
                    model: str(client.get_model_version_by_alias(model, CHAMPION).version)
                    for model in ("nearx-eta", "nearx-fraud", "nearx-ranker", "nearx-green")
                },
                **_online_for_seeded_merchants(settings, db),
                "matches": asyncio.run(_matches(settings, db)),
            }
        )

    monkeypatch.setattr(nearx.cli, "_serve", probe)
    try:
        result = runner.invoke(app, ["up", *SMALL])
        assert result.exit_code == 0, result.output
        steps = [line[:5] for line in result.output.splitlines() if line.startswith("[")]
        assert steps == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
        ((seen),) = served
        assert seen["db"] == url
        assert seen["counts"]["merchants"][0] == {"kind": "merchant", "status": "approved", "n": 25}
        assert set(seen["champions"].values()) == {"1"}
        # the simulated history of the seeded merchants is online under their platform ids
        assert seen["with_history"]
        assert seen["with_features"] == seen["with_history"]
        for page in seen["matches"]:
            assert page["results"]
            # timing (over budget, shed), never a feature failure
            assert page["scoring"]["degraded_reason"] in {None, "over_budget", "shed"}
            if not page["scoring"]["degraded"]:  # ranked by the champion: ratings from online features
                assert page["scoring"]["model"] == "nearx-ranker"
                assert any(result["rating"] is not None for result in page["results"])
        assert (tmp_path / "home" / "warehouse.duckdb").exists()

        again = runner.invoke(app, ["up", "--skip-pipeline", *SMALL])
        assert again.exit_code == 0, again.output
        assert "seeded nothing new" in again.output
        assert served[1]["counts"] == seen["counts"]
    finally:
        get_settings.cache_clear()
        drop_database(pg_admin_url, name)


def test_up_help_lists_its_steps_options() -> None:
    result = runner.invoke(app, ["up", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for option in ("--orders", "--days", "--seed", "--skip-pipeline", "--host", "--port"):
        assert option in result.output
