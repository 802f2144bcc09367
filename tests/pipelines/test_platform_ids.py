"""Seeded demo entities are keyed by their platform ids from staging on, so the online store answers
the ids the platform asks for.

The pure parts are checked on small frames. Then a real PostgreSQL holds ``demo_entities`` rows
(as ``nearx up`` leaves them) and one seeded merchant's platform row, and Dagster materialises
the graph (simulation, extracts, staging, marts, offline and online features) for a small city.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import h3
import polars as pl
import psycopg
import pytest
from feast import FeatureStore

from features.build import LAKE_TABLES
from features.transforms.tables import FEATURE_TABLES
from pipelines.assets.features import OFFLINE_KEY, FeatureStoreResource
from pipelines.assets.online import ONLINE_KEY
from pipelines.definitions import build_definitions
from pipelines.extract import extract_dir
from pipelines.platform_ids import to_platform_ids, without_simulated_entities
from pipelines.resources import lake_path
from pipelines.runner import PipelineReport, execute, run_pipeline
from pipelines.simulation.lake import partition_files
from pipelines.simulation.run import SimulationSpec, city_entities
from pipelines.staging import staging_path

SPEC = SimulationSpec(("kathmandu",), date(2026, 2, 2), 2, orders_per_day=200, seed=7)
IDS = pl.LazyFrame(
    {
        "kind": ["merchant", "courier", "customer", "provider"],
        "source_id": ["kat-m-1", "kat-k-1", "kat-c-1", "kat-p-1"],
        "platform_id": ["M", "K", "C", "P"],
    }
)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (
            {"merchant_id": ["kat-m-1", "kat-m-2", None], "n": [1, 2, 3]},
            {"merchant_id": ["M", "kat-m-2", None], "n": [1, 2, 3]},
        ),
        (
            {
                "order_id": ["o1", "o2"],
                "customer_id": ["kat-c-1", "kat-c-2"],
                "merchant_id": ["kat-m-2", "kat-m-1"],
                "courier_id": ["kat-k-1", None],
            },
            {
                "order_id": ["o1", "o2"],
                "customer_id": ["C", "kat-c-2"],
                "merchant_id": ["kat-m-2", "M"],
                "courier_id": ["K", None],
            },
        ),
        (
            {"customer_id": ["kat-c-1"], "favourite_merchant_id": ["kat-m-1"]},
            {"customer_id": ["C"], "favourite_merchant_id": ["M"]},
        ),
        ({"provider_id": ["kat-p-1"]}, {"provider_id": ["P"]}),
        ({"merchant_id": ["kat-k-1"]}, {"merchant_id": ["kat-k-1"]}),  # a courier's id is no merchant's
        ({"order_id": ["o1"]}, {"order_id": ["o1"]}),  # no entity column: unchanged
    ],
    ids=["merchant-nulls-order", "every-key-of-an-order", "favourite", "provider", "kinds-apart", "none"],
)
def test_entity_columns_take_the_platform_id_of_seeded_entities(
    frame: dict[str, list[object]], expected: dict[str, list[object]]
) -> None:
    mapped = to_platform_ids(pl.LazyFrame(frame), IDS).collect()
    assert mapped.to_dict(as_series=False) == expected


def test_an_entity_seeded_twice_as_one_kind_is_an_error_not_duplicate_rows() -> None:
    twice = pl.concat([IDS, IDS.head(1).with_columns(platform_id=pl.lit("M2"))])
    with pytest.raises(pl.exceptions.ComputeError, match="m:1"):
        to_platform_ids(pl.LazyFrame({"merchant_id": ["kat-m-1"]}), twice).collect()


def test_a_seeded_entity_keeps_its_simulated_row_and_live_only_entities_their_own() -> None:
    simulated = pl.LazyFrame({"merchant_id": ["M", "kat-m-2"], "price_level": [1.5, 2.0]})
    live = pl.LazyFrame(
        {"merchant_id": ["M", "U"], "price_level": [None, None]}, schema=simulated.collect_schema()
    )
    kept = without_simulated_entities(live, simulated, "merchants").collect()
    assert kept["merchant_id"].to_list() == ["U"]
    orders = pl.LazyFrame({"merchant_id": ["M"]})
    assert (
        without_simulated_entities(orders, simulated, "orders").collect().height == 1
    )  # not an entity table


@dataclass
class Seeded:
    lake: Path
    store: FeatureStore
    report: PipelineReport
    merchants: dict[str, str]
    """Simulator id -> platform id of the seeded merchants (the first has a platform row)."""
    courier: tuple[str, str]
    customer: tuple[str, str]
    unseeded_merchant: str


def _arrange_seed(url: str) -> tuple[dict[str, str], tuple[str, str], tuple[str, str], str]:
    """``demo_entities`` rows for two merchants, a courier and a customer of the simulated city, and
    the first merchant's platform row, as ``api/demo`` writes them."""
    entities = city_entities("kathmandu", SPEC.seed, SPEC.orders_per_day)
    merchants = entities.merchants.head(3).rows(named=True)
    seeded = {m["merchant_id"]: str(uuid.uuid4()) for m in merchants[:2]}
    courier = (entities.couriers["courier_id"][0], str(uuid.uuid4()))
    customer = (entities.customers["customer_id"][0], str(uuid.uuid4()))
    rows = [
        *(("merchant", source, platform) for source, platform in seeded.items()),
        ("courier", *courier),
        ("customer", *customer),
    ]
    first = merchants[0]
    with psycopg.connect(url, autocommit=True) as conn:
        owner = uuid.uuid4()
        conn.execute("INSERT INTO users (id, display_name) VALUES (%s, 'Demo owner')", (owner,))
        conn.execute(
            "INSERT INTO merchants (id, city_id, kind, category, name, owner_user_id, status, lat, lng, "
            "h3_r7, h3_r9, prep_time_min, created_at) VALUES (%s, 'kathmandu', 'merchant', %s, "
            "'Demo', %s, 'approved', %s, %s, %s, %s, 20, %s)",
            (
                seeded[first["merchant_id"]],
                first["category"],
                owner,
                first["lat"],
                first["lng"],
                h3.latlng_to_cell(first["lat"], first["lng"], 7),
                h3.latlng_to_cell(first["lat"], first["lng"], 9),
                datetime.now(UTC),
            ),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO demo_entities (city_id, kind, source_id, platform_id) "
                "VALUES ('kathmandu', %s, %s, %s)",
                rows,
            )
    return seeded, courier, customer, merchants[2]["merchant_id"]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, pg_admin_url: str, template_db: str) -> Iterator[Seeded]:
    from nearx.postgres import drop_database, ensure_database, with_database
    from nearx.settings import load_settings

    name = f"nearx_ids_{uuid.uuid4().hex[:10]}"
    ensure_database(pg_admin_url, name, template=template_db)
    url = with_database(pg_admin_url, name)
    merchants, courier, customer, unseeded = _arrange_seed(url)
    settings = load_settings({"NEARX_HOME": str(tmp_path_factory.mktemp("ids") / "nearx")})
    defs = build_definitions(settings, database_url=url, seed=SPEC.seed, orders_per_day=SPEC.orders_per_day)
    lake = lake_path(settings)
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            report = run_pipeline(defs, SPEC, instance)
            execute(defs, "ml", instance, report, asset_selection=[OFFLINE_KEY, ONLINE_KEY])
        store = FeatureStoreResource.from_settings(settings).store(lake)
        yield Seeded(lake, store, report, merchants, courier, customer, unseeded)
    finally:
        drop_database(pg_admin_url, name)


def _simulated_features(lake: Path, view: str) -> pl.DataFrame:
    """``view`` computed from the simulator's raw partitions alone, under the simulator's ids."""
    tables = {table: pl.scan_parquet(partition_files(lake, table)) for table in LAKE_TABLES}
    return FEATURE_TABLES[view](tables).collect()


def _newest(frame: pl.DataFrame, key: str, value: str) -> dict[str, object]:
    row = frame.filter(pl.col(key) == value).sort("event_timestamp").tail(1)
    assert row.height == 1, f"no {key} {value}"
    return row.drop(key, "event_timestamp").row(0, named=True)


def _online(store: FeatureStore, view: str, key: str, ids: list[str]) -> list[dict[str, object]]:
    names = [f.name for f in store.get_feature_view(view).features]
    response = store.get_online_features(
        features=[f"{view}:{name}" for name in names], entity_rows=[{key: value} for value in ids]
    ).to_dict()
    return [{name: response[name][index] for name in names} for index in range(len(ids))]


def _same(online: dict[str, object], simulated: dict[str, object]) -> None:
    assert online.keys() <= simulated.keys()
    for name, value in online.items():
        expected = simulated[name]
        assert value == (pytest.approx(float(expected)) if isinstance(expected, int | float) else expected), (
            name
        )


@pytest.mark.slow
def test_the_graph_passes_every_check_with_seeded_entities(seeded: Seeded) -> None:
    assert seeded.report.failures == []
    assert seeded.report.failed_checks == []
    assert list(extract_dir(seeded.lake, "demo_entities").glob("batch-*.parquet"))


@pytest.mark.slow
def test_staging_knows_a_seeded_entity_by_its_platform_id_only(seeded: Seeded) -> None:
    merchants = pl.read_parquet(staging_path(seeded.lake, "merchants"))
    orders = pl.read_parquet(staging_path(seeded.lake, "orders"))
    raw_orders = pl.read_parquet(partition_files(seeded.lake, "orders"))
    for source, platform in seeded.merchants.items():
        assert merchants.filter(pl.col("merchant_id") == source).is_empty()
        (row,) = merchants.filter(pl.col("merchant_id") == platform).rows(named=True)
        assert row["price_level"] is not None  # the simulated row, not the platform's (traits unknown)
        assert orders.filter(pl.col("merchant_id") == source).is_empty()
        expected = raw_orders.filter(pl.col("merchant_id") == source).height
        assert orders.filter(pl.col("merchant_id") == platform).height == expected > 0
    assert merchants["merchant_id"].is_unique().all()
    assert merchants.filter(pl.col("merchant_id") == seeded.unseeded_merchant).height == 1


@pytest.mark.slow
def test_the_online_store_answers_a_seeded_merchant_by_platform_id_with_its_simulated_history(
    seeded: Seeded,
) -> None:
    simulated = _simulated_features(seeded.lake, "merchant_stats")
    sources = [*seeded.merchants, seeded.unseeded_merchant]
    asked = [*seeded.merchants.values(), seeded.unseeded_merchant]
    for source, online in zip(
        sources, _online(seeded.store, "merchant_stats", "merchant_id", asked), strict=True
    ):
        assert online["merchant_orders_28d"], source  # found, with history
        _same(online, _newest(simulated, "merchant_id", source))
    (by_source,) = _online(seeded.store, "merchant_stats", "merchant_id", [next(iter(seeded.merchants))])
    assert set(by_source.values()) == {None}  # the simulator's id of a seeded merchant is gone


@pytest.mark.slow
def test_per_hour_courier_and_customer_views_answer_platform_ids(seeded: Seeded) -> None:
    hours = _simulated_features(seeded.lake, "merchant_hour_stats")
    source, platform = next(iter(seeded.merchants.items()))
    (hour_key_of_source,) = (
        hours.filter(pl.col("merchant_hour").str.starts_with(f"{source}@"))
        .sort("merchant_hour_orders_28d", "merchant_hour")
        .tail(1)["merchant_hour"]
        .to_list()
    )
    hour = hour_key_of_source.split("@")[1]
    (online,) = _online(seeded.store, "merchant_hour_stats", "merchant_hour", [f"{platform}@{hour}"])
    _same(online, _newest(hours, "merchant_hour", hour_key_of_source))
    for view, key, (source_id, platform_id) in (
        ("courier_stats", "courier_id", seeded.courier),
        ("customer_stats", "customer_id", seeded.customer),
    ):
        simulated = _simulated_features(seeded.lake, view)
        (online,) = _online(seeded.store, view, key, [platform_id])
        _same(online, _newest(simulated, key, source_id))
