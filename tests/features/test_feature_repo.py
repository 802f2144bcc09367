"""The Feast repo: transforms write exactly the views' schemas; retrieval is point-in-time correct."""

import os
from datetime import timedelta
from pathlib import Path

import polars as pl
import psycopg
import pytest
from feast import FeatureStore

from features import views
from features.build import feature_table_path
from features.entities import ENTITIES
from features.services import SERVICES
from features.store import (
    POSTGRES_ONLINE_SCHEMA,
    apply_repo,
    historical,
    materialize,
    online,
    open_store,
    point_in_time_features,
    postgres_online_config,
    redis_connection_string,
    repo_config,
)
from features.transforms.windows import EVENT_TIMESTAMP
from features.views import BATCH_VIEWS
from nearx.settings import SettingsError, load_settings
from tests.small_city import SmallCity


@pytest.mark.parametrize("view", views.BATCH_VIEWS, ids=lambda v: v.name)
def test_each_feature_table_has_exactly_its_view_columns(city: SmallCity, view: object) -> None:
    frame = pl.read_parquet(feature_table_path(city.features_dir, view.name))  # type: ignore[attr-defined]
    keys = [key for entity in ENTITIES if entity.name in view.entities for key in [entity.join_key]]  # type: ignore[attr-defined]
    expected = {*keys, EVENT_TIMESTAMP, *(f.name for f in view.schema)}  # type: ignore[attr-defined]
    assert set(frame.columns) == expected
    assert frame.height > 0
    assert frame.select(pl.struct(*keys, EVENT_TIMESTAMP).is_unique().all()).item()


def test_one_versioned_service_per_model(store: FeatureStore) -> None:
    assert sorted(s.name for s in store.list_feature_services()) == [
        "eta_v1",
        "fraud_v1",
        "green_v1",
        "ranker_v1",
    ]
    assert {s.name for s in SERVICES} == {s.name for s in store.list_feature_services()}


def _merchant_rows(city: SmallCity) -> pl.DataFrame:
    orders = pl.scan_parquet(city.raw_paths()["orders"]).select("merchant_id", "created_at").collect()
    return orders.rename({"created_at": EVENT_TIMESTAMP}).head(3000)


def test_historical_values_equal_the_newest_snapshot_at_or_before_each_row(
    city: SmallCity, store: FeatureStore
) -> None:
    rows = _merchant_rows(city)
    got = historical(
        store, "fraud_v1", rows.join(_customers_for(city, rows), on=[EVENT_TIMESTAMP, "merchant_id"])
    )
    table = pl.read_parquet(feature_table_path(city.features_dir, "merchant_stats"))
    expected = (
        rows.sort(EVENT_TIMESTAMP)
        .join_asof(
            table.sort(EVENT_TIMESTAMP).rename({EVENT_TIMESTAMP: "snapshot_at"}),
            left_on=EVENT_TIMESTAMP,
            right_on="snapshot_at",
            by="merchant_id",
            strategy="backward",
            tolerance=views.WINDOW_TTL,
        )
        .select("merchant_id", EVENT_TIMESTAMP, expected_orders="merchant_orders_28d")
    )
    compared = got.join(expected, on=["merchant_id", EVENT_TIMESTAMP])
    assert compared.height == rows.height
    assert compared.select((pl.col("merchant_orders_28d").eq_missing(pl.col("expected_orders"))).all()).item()
    assert compared["merchant_orders_28d"].null_count() < rows.height  # real values came through


def _customers_for(city: SmallCity, rows: pl.DataFrame) -> pl.DataFrame:
    orders = pl.scan_parquet(city.raw_paths()["orders"]).select("merchant_id", "customer_id", "created_at")
    return (
        orders.rename({"created_at": EVENT_TIMESTAMP})
        .collect()
        .join(rows, on=["merchant_id", EVENT_TIMESTAMP])
        .unique()
    )


def test_a_value_stamped_after_the_event_never_reaches_its_row(city: SmallCity, tmp_path: object) -> None:
    """Poison the table with a snapshot one microsecond after each row: it must never be joined."""
    rows = _merchant_rows(city).sort(EVENT_TIMESTAMP).unique("merchant_id", keep="last", maintain_order=True)
    table = pl.read_parquet(feature_table_path(city.features_dir, "merchant_stats"))
    poison = (
        rows.select(
            "merchant_id", (pl.col(EVENT_TIMESTAMP) + timedelta(microseconds=1)).alias(EVENT_TIMESTAMP)
        )
        .join(table.drop(EVENT_TIMESTAMP).unique("merchant_id"), on="merchant_id")
        .with_columns(merchant_orders_28d=pl.lit(1e9))
    )
    poisoned_dir = city.features_dir.parent / "poisoned"
    poisoned_dir.mkdir(exist_ok=True)
    for view in views.BATCH_VIEWS:
        source = pl.read_parquet(feature_table_path(city.features_dir, view.name))
        if view.name == "merchant_stats":
            source = pl.concat([source, poison.select(source.columns)]).unique(
                ["merchant_id", EVENT_TIMESTAMP]
            )
        source.write_parquet(feature_table_path(poisoned_dir, view.name))
    poisoned = open_store(city.settings, poisoned_dir, online="sqlite")
    apply_repo(poisoned)
    got = historical(poisoned, "ranker_v1", rows.with_columns(customer_id=pl.lit("nobody")))
    assert got.height == rows.height
    assert got["merchant_orders_28d"].max() < 1e9  # type: ignore[operator]
    # the poison is real: one microsecond later, it is what retrieval returns
    later = rows.with_columns(
        pl.col(EVENT_TIMESTAMP) + timedelta(microseconds=1), customer_id=pl.lit("nobody")
    )
    assert (historical(poisoned, "ranker_v1", later)["merchant_orders_28d"] == 1e9).all()


def _probes(table: pl.DataFrame, keys: list[str], ttl: timedelta) -> pl.DataFrame:
    """Entity rows around a sample of snapshots: at, just before, between, at and past the TTL's
    edge, and a key without snapshots."""
    sample = table.select(*keys, EVENT_TIMESTAMP).sample(n=min(400, table.height), seed=3)
    offsets = [timedelta(0), -timedelta(microseconds=1), timedelta(hours=5), ttl, ttl + timedelta(seconds=1)]
    probes = pl.concat(sample.with_columns(pl.col(EVENT_TIMESTAMP) + offset) for offset in offsets)
    stranger = sample.head(1).with_columns(pl.col(k).cast(pl.String) + "-unknown" for k in keys)
    return pl.concat([probes, stranger.select(probes.columns)])


@pytest.mark.parametrize("view", views.BATCH_VIEWS, ids=lambda v: v.name)
def test_point_in_time_features_equal_feast_file_store_retrieval(
    city: SmallCity, store: FeatureStore, view: object
) -> None:
    """The as-of join returns what Feast's own file-store retrieval returns, value for value
    (a row Feast drops, because its key had only later snapshots, is a row of nulls here)."""
    names = [f.name for f in view.features]  # type: ignore[attr-defined]
    keys = list(view.join_keys)  # type: ignore[attr-defined]
    table = pl.read_parquet(feature_table_path(city.features_dir, view.name))  # type: ignore[attr-defined]
    rows = _probes(table, keys, view.ttl).unique()  # type: ignore[attr-defined]
    ours = point_in_time_features(store, view.name, names, rows)  # type: ignore[attr-defined]
    job = store.get_historical_features(
        entity_df=rows.to_pandas(),
        features=[f"{view.name}:{name}" for name in names],  # type: ignore[attr-defined]
    )
    feast = pl.from_pandas(job.to_df()).select(
        *keys, pl.col(EVENT_TIMESTAMP).cast(rows.schema[EVENT_TIMESTAMP]), *names
    )
    assert ours.height == rows.height
    compared = ours.join(feast, on=[*keys, EVENT_TIMESTAMP], how="left", suffix="_feast")
    assert compared.height == rows.height
    for name in names:
        assert compared.select(pl.col(name).eq_missing(pl.col(f"{name}_feast")).all()).item(), name
    assert ours[names[0]].null_count() < rows.height  # real values came through


def _materialize_and_read(store: FeatureStore, city: SmallCity) -> pl.DataFrame:
    table = pl.read_parquet(feature_table_path(city.features_dir, "merchant_stats"))
    end = table[EVENT_TIMESTAMP].max()
    materialize(store, end=end, start=end - timedelta(days=60))  # type: ignore[operator]
    merchant = table.filter(pl.col(EVENT_TIMESTAMP) == end)["merchant_id"][0]
    got = online(store, "fraud_v1", [{"customer_id": "nobody", "merchant_id": merchant}])
    newest = table.filter(pl.col("merchant_id") == merchant).sort(EVENT_TIMESTAMP)[-1]
    assert got["merchant_orders_28d"][0] == newest["merchant_orders_28d"][0]
    return got


def test_online_sqlite_serves_the_newest_snapshot(city: SmallCity, store: FeatureStore) -> None:
    _materialize_and_read(store, city)


@pytest.mark.redis
@pytest.mark.skipif(not os.environ.get("NEARX_TEST_REDIS_URL"), reason="NEARX_TEST_REDIS_URL not set")
def test_online_redis_serves_the_newest_snapshot(city: SmallCity) -> None:
    store = open_store(
        city.settings, city.features_dir, online="redis", online_url=os.environ["NEARX_TEST_REDIS_URL"]
    )
    apply_repo(store)
    _materialize_and_read(store, city)


def test_online_postgres_serves_the_newest_snapshot(city: SmallCity, db_url: str) -> None:
    """Through settings, as serving opens it: ``NEARX_FEAST_ONLINE=postgres`` and the database URL."""
    settings = load_settings(
        {
            "NEARX_HOME": str(city.settings.home),
            "NEARX_FEAST_ONLINE": "postgres",
            "NEARX_DATABASE_URL": db_url,
        }
    )
    store = open_store(settings, city.features_dir)
    assert store.config.online_store.type == "postgres"
    apply_repo(store)
    _materialize_and_read(store, city)
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
            (POSTGRES_ONLINE_SCHEMA,),
        ).fetchone()
    assert row is not None
    assert row[0] == len(BATCH_VIEWS)  # one online table per batch view, in its own schema


def test_postgres_url_becomes_feast_online_config() -> None:
    config = postgres_online_config("postgresql://nearx:p%40ss@db.internal:6432/platform?sslmode=require")
    assert {k: config[k] for k in ("host", "port", "database", "user", "password", "sslmode")} == {
        "host": "db.internal",
        "port": 6432,
        "database": "platform",
        "user": "nearx",
        "password": "p@ss",
        "sslmode": "require",
    }
    assert postgres_online_config("postgresql://postgres@127.0.0.1/test")["sslmode"] == "prefer"


def test_online_store_choice_needs_its_url(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="NEARX_FEAST_ONLINE=postgres needs"):
        load_settings({"NEARX_HOME": str(tmp_path), "NEARX_FEAST_ONLINE": "postgres"})
    with pytest.raises(SettingsError, match="NEARX_FEAST_ONLINE=redis needs NEARX_REDIS_URL"):
        load_settings({"NEARX_HOME": str(tmp_path), "NEARX_FEAST_ONLINE": "redis"})
    own = load_settings(
        {
            "NEARX_HOME": str(tmp_path),
            "NEARX_FEAST_ONLINE": "postgres",
            "NEARX_DATABASE_URL": "postgresql://app@db/platform",
            "NEARX_FEAST_POSTGRES_URL": "postgresql://feast@features/online",
        }
    )
    assert repo_config(own).online_store.host == "features"  # its own database wins


def test_redis_url_becomes_feast_connection_string() -> None:
    assert redis_connection_string("redis://127.0.0.1:6380/2") == "127.0.0.1:6380,db=2"
    assert redis_connection_string("rediss://:pw@h/0") == "h:6379,db=0,password=pw,ssl=true"
    with pytest.raises(ValueError, match="not a redis URL"):
        redis_connection_string("http://h")
