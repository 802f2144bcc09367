"""The live mapping's pure parts: folding extract batches, and attributing orders to searches."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from pipelines.contracts import UTC_TS
from pipelines.extract import extract_dir
from pipelines.live import SOURCES, map_search, read_extract

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
ZONES = {"pune": "Asia/Kolkata"}


def test_batches_fold_into_the_latest_row_whatever_their_column_types(tmp_path: Path) -> None:
    folder = extract_dir(tmp_path, "couriers")
    folder.mkdir(parents=True)
    local = datetime(2026, 11, 1, 11, 45).astimezone()
    # an older batch without the mode column, timestamps in another zone
    pl.DataFrame({"id": ["a", "b"], "city_id": ["pune", "pune"], "created_at": [local, local]}).with_columns(
        pl.col("created_at").dt.convert_time_zone("Asia/Kathmandu")
    ).write_parquet(folder / "batch-20261101T000000000000.parquet")
    # a newer one where a courier changed; an all-null column has Polars' Null type
    pl.DataFrame({"id": ["b"], "city_id": [None], "mode": ["e_bike"], "created_at": [local]}).write_parquet(
        folder / "batch-20261102T000000000000.parquet"
    )
    couriers = read_extract(tmp_path, SOURCES["couriers"])
    assert couriers.schema["created_at"] == UTC_TS
    assert couriers.sort("id").rows() == [
        ("a", "pune", None, local.astimezone(UTC)),
        ("b", None, "e_bike", local.astimezone(UTC)),
    ]


def test_an_empty_extract_is_an_empty_frame_of_the_read_columns(tmp_path: Path) -> None:
    outbox = read_extract(tmp_path, SOURCES["outbox"])
    assert outbox.is_empty()
    assert list(outbox.columns) == list(SOURCES["outbox"].columns)


def _served(match: str, at: datetime, merchants: list[str]) -> dict[str, object]:
    impressions = [{"merchant_id": m, "position": i + 1} for i, m in enumerate(merchants)]
    payload = {"match_id": match, "customer_id": "c", "local_hour": 11, "impressions": impressions}
    return {
        "event_type": "match.served",
        "city_id": "pune",
        "payload": json.dumps(payload),
        "occurred_at": at,
    }


def _clicked(match: str, merchant: str, at: datetime) -> dict[str, object]:
    payload = {"match_id": match, "merchant_id": merchant, "customer_id": "c", "position": 1}
    return {
        "event_type": "match.clicked",
        "city_id": "pune",
        "payload": json.dumps(payload),
        "occurred_at": at,
    }


def test_an_order_is_credited_to_the_latest_session_where_its_merchant_was_clicked() -> None:
    events = [
        _served("early", T0, ["m1", "m2"]),
        _clicked("early", "m1", T0 + timedelta(seconds=20)),
        _served("late", T0 + timedelta(minutes=30), ["m1"]),
        _clicked("late", "m1", T0 + timedelta(minutes=31)),
        _served("unclicked", T0 + timedelta(minutes=40), ["m2"]),  # m2 ordered, never clicked
        _served("stale", T0 - timedelta(hours=3), ["m3"]),
        _clicked("stale", "m3", T0 - timedelta(hours=3)),  # ordered more than 2 h later
    ]
    outbox = pl.DataFrame(events, schema_overrides={"occurred_at": UTC_TS})
    orders = pl.DataFrame(
        {
            "order_id": ["o1", "o2", "o3"],
            "customer_id": ["c", "c", "c"],
            "merchant_id": ["m1", "m2", "m3"],
            "created_at": [T0 + timedelta(minutes=45)] * 3,
        },
        schema_overrides={"created_at": UTC_TS},
    )
    merchants = pl.DataFrame({"merchant_id": ["m1", "m2", "m3"], "prep_median_s": [600.0, 900.0, 300.0]})
    sessions, impressions = map_search(outbox, merchants, orders, ZONES)
    converted = dict(sessions.select("session_id", "order_id").iter_rows())
    assert converted == {"early": None, "late": "o1", "unclicked": None, "stale": None}
    ordered = impressions.filter("ordered").select("session_id", "merchant_id", "clicked").rows()
    assert ordered == [("late", "m1", True)]
    assert sessions.filter(pl.col("session_id") == "late")["day"].to_list() == [T0.date()]
    assert impressions.filter(pl.col("session_id") == "early")["prep_estimate_s"].to_list() == [600.0, 900.0]
