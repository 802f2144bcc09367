"""The live mapping's pure parts: folding extract batches, and attributing orders to searches."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from nearx.price_levels import PRICE_LEVEL_OF_QUARTILE
from pipelines.contracts import UTC_TS
from pipelines.extract import extract_dir
from pipelines.live import (
    SOURCES,
    checkout_labels,
    fraud_labels,
    map_search,
    payment_labels,
    read_extract,
)
from pipelines.simulation.cities import KATHMANDU
from pipelines.simulation.entities import Scale, generate_entities
from pipelines.simulation.run import ENTITIES_AS_OF

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


def _served(match: str, at: datetime, merchants: list[str], **shown: list[object]) -> dict[str, object]:
    """A ``match.served`` row; ``shown`` adds per-impression fields (one value per merchant)."""
    impressions = [
        {"merchant_id": m, "position": i + 1, **{name: values[i] for name, values in shown.items()}}
        for i, m in enumerate(merchants)
    ]
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
            "match_id": [None] * 3,  # no checkout named its match: the window decides
        },
        schema_overrides={"created_at": UTC_TS, "match_id": pl.String},
    )
    merchants = pl.DataFrame({"merchant_id": ["m1", "m2", "m3"], "prep_median_s": [600.0, 900.0, 300.0]})
    sessions, impressions, _ = map_search(outbox, merchants, orders, ZONES)
    converted = dict(sessions.select("session_id", "order_id").iter_rows())
    assert converted == {"early": None, "late": "o1", "unclicked": None, "stale": None}
    ordered = impressions.filter("ordered").select("session_id", "merchant_id", "clicked").rows()
    assert ordered == [("late", "m1", True)]
    assert sessions.filter(pl.col("session_id") == "late")["day"].to_list() == [T0.date()]
    assert impressions.filter(pl.col("session_id") == "early")["prep_estimate_s"].to_list() == [600.0, 900.0]


def _orders(rows: list[tuple[str, str, datetime, str | None]]) -> pl.DataFrame:
    """Mapped orders of customer ``c``: (order_id, merchant_id, created_at, match_id)."""
    return pl.DataFrame(
        [(order, "c", merchant, at, match) for order, merchant, at, match in rows],
        schema={
            "order_id": pl.String,
            "customer_id": pl.String,
            "merchant_id": pl.String,
            "created_at": UTC_TS,
            "match_id": pl.String,
        },
        orient="row",
    )


def test_an_order_that_names_its_match_is_joined_to_it_exactly() -> None:
    events = [
        _served("named", T0, ["m1", "m2", "m3"]),  # nothing clicked, ordered 3 h later
        _served("clicked", T0 + timedelta(hours=2, minutes=50), ["m1"]),
        _clicked("clicked", "m1", T0 + timedelta(hours=2, minutes=51)),  # the window would pick it
    ]
    outbox = pl.DataFrame(events, schema_overrides={"occurred_at": UTC_TS})
    at = T0 + timedelta(hours=3)
    orders = _orders(
        [
            ("o1", "m1", at, "named"),  # one cart of two merchants from the named match
            ("o2", "m2", at, "named"),
            ("o4", "m4", at, "named"),  # never shown in that match: not credited, no window guess
            ("o5", "m1", at + timedelta(minutes=5), None),  # no match named: the window's guess
        ]
    )
    merchants = pl.DataFrame({"merchant_id": ["m1", "m2", "m3"], "prep_median_s": [600.0, 900.0, 300.0]})
    sessions, impressions, credits = map_search(outbox, merchants, orders, ZONES)
    assert dict(sessions.select("session_id", "order_id").iter_rows()) == {"named": "o1", "clicked": "o5"}
    assert sorted(credits.select("order_id", "session_id").rows()) == [
        ("o1", "named"),
        ("o2", "named"),
        ("o5", "clicked"),
    ]
    named = impressions.filter(pl.col("session_id") == "named").sort("position")
    assert named.select("merchant_id", "clicked", "ordered").rows() == [
        ("m1", True, True),  # no click was logged, but the checkout says the customer chose it
        ("m2", True, True),
        ("m3", False, False),
    ]


def test_impressions_keep_what_was_shown_with_the_price_level_on_the_simulated_scale() -> None:
    shown = {
        "distance_m": [350, 1200, 2400, 900],
        "price_level": [1, 2, 3, 4],
        "rating": [4.6, None, 3.9, 4.1],
        "eco_packaging": [True, False, False, True],
        "is_favourite": [False, True, False, False],
    }
    events = [
        _served("new", T0, ["m1", "m2", "m3", "m4"], **shown),
        _served("old", T0, ["m1"]),  # served before the payload carried these: nulls
    ]
    outbox = pl.DataFrame(events, schema_overrides={"occurred_at": UTC_TS})
    merchants = pl.DataFrame({"merchant_id": ["m1"], "prep_median_s": [600.0]})
    _, impressions, _ = map_search(outbox, merchants, _orders([]), ZONES)
    columns = ["distance_m", "price_level", "rating", "eco_packaging", "is_favourite"]
    new = impressions.filter(pl.col("session_id") == "new").sort("position").select(columns)
    assert new.rows() == [
        (350, 0.708, 4.6, True, False),
        (1200, 0.909, None, False, True),
        (2400, 1.1, 3.9, False, False),
        (900, 1.412, 4.1, True, False),
    ]
    old = impressions.filter(pl.col("session_id") == "old").select(columns)
    assert old.rows() == [(None, None, None, None, None)]


def test_each_price_quartile_maps_to_the_simulated_level_in_its_middle() -> None:
    """The mapping's lognormal agrees with the simulator's merchants: the median simulated level
    within each quartile of simulated levels is the mapped value (sampling error ~1 %)."""
    entities = generate_entities(KATHMANDU, 3, Scale(4000, 300, 20, 10), ENTITIES_AS_OF)
    levels = entities.merchants.select(
        "price_level", quartile=(pl.col("price_level").rank("ordinal") * 4 / pl.len()).ceil().cast(pl.Int64)
    )
    middles = dict(levels.group_by("quartile").agg(pl.col("price_level").median()).iter_rows())
    for quartile, mapped in PRICE_LEVEL_OF_QUARTILE.items():
        assert abs(middles[quartile] - mapped) / mapped < 0.03, (quartile, middles[quartile], mapped)


def _reviewed(assessment: str, fraud: bool, at: datetime) -> dict[str, object]:
    return {
        "event_type": "checkout.reviewed",
        "city_id": "pune",
        "payload": json.dumps({"assessment_id": assessment, "customer_id": "c", "fraud": fraud}),
        "occurred_at": at,
    }


def test_a_reviewed_checkout_labels_the_retry_of_the_same_cart() -> None:
    minute = timedelta(minutes=1)
    assessments = pl.DataFrame(
        [
            ("held-1", "c", None, "cart-a", T0),  # held, then cleared
            ("retry-1", "c", "checkout-1", "cart-a", T0 + 10 * minute),  # placed after the review
            ("held-2", "c", None, "cart-b", T0),  # held, labelled fraud, rescored and placed later
            ("retry-2", "c", "checkout-2", "cart-b", T0 + 20 * minute),
            ("early", "c", "checkout-3", "cart-c", T0),  # placed before its cart was ever reviewed
            ("held-3", "c", None, "cart-c", T0 + minute),
            ("other", "c", "checkout-4", "cart-d", T0 + 30 * minute),  # another cart: no label
        ],
        schema=SOURCES["checkout_fraud_assessments"].columns,
        orient="row",
    )
    outbox = pl.DataFrame(
        [
            _reviewed("held-1", False, T0 + 5 * minute),
            _reviewed("held-2", False, T0 + 5 * minute),
            _reviewed("held-2", True, T0 + 6 * minute),  # a later verdict on the same cart wins
            _reviewed("held-3", False, T0 + 2 * minute),
        ],
        schema_overrides={"occurred_at": UTC_TS},
    )
    labels = checkout_labels(outbox, assessments)
    assert sorted(labels.rows()) == [("checkout-1", False), ("checkout-2", True)]


def test_any_fraud_verdict_on_an_order_wins_over_the_other_sources() -> None:
    intents = pl.DataFrame({"id": ["i1", "i2"], "order_id": ["o1", "o2"]})
    decided = [
        {
            "event_type": "payment.review_decided",
            "city_id": "pune",
            "payload": json.dumps({"intent_id": intent, "decision": decision}),
            "occurred_at": T0,
        }
        for intent, decision in (("i1", "approve"), ("i2", "approve"), ("i2", "reject"))
    ]
    payments = payment_labels(pl.DataFrame(decided, schema_overrides={"occurred_at": UTC_TS}), intents)
    checkouts = pl.DataFrame({"paid_order_id": ["o1", "o3"], "is_fraud": [True, False]})
    labels = fraud_labels(payments, checkouts)
    assert sorted(labels.rows()) == [("o1", True), ("o2", True), ("o3", False)]
