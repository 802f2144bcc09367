"""The live platform's extracts mapped onto the lake contract, so staging sees real traffic.

``pipelines/extract.py`` copies changed PostgreSQL rows into ``lake/postgres/<table>/``
as batches; this module folds the batches into the latest state per row and maps it to
the simulator's tables (``pipelines/contracts.py``): merchants, couriers and customers
seen by the platform; ``match.served`` / ``match.clicked`` events as search sessions and
impressions; finished merchant orders as orders (fraud labels from reviewers' decisions on
payments and on held checkouts); finished deliveries as deliveries.
The result goes to ``lake/live/<table>.parquet`` and staging reads it beside the
simulated partitions. Columns the platform does not record stay null (the mapping and
the gaps are documented in ``docs/marts.md``): nothing is invented.

Pure Polars functions of the lake directory, like staging, so tests and assets share them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl

from nearx.price_levels import PRICE_LEVEL_OF_QUARTILE
from pipelines.contracts import CONTRACTS, UTC_TS
from pipelines.extract import extract_dir
from pipelines.simulation.geometry import h3_cells, haversine_m
from pipelines.simulation.lake import write_atomic

ATTRIBUTION_WINDOW = timedelta(hours=2)
"""The fallback for an order whose checkout named no match: it counts as the outcome of a search
when the customer clicked its merchant in a session served at most this long before the order
(the latest such session wins)."""

ORDER_STATUS = {
    "delivered": "delivered",
    "refunded": "delivered",  # delivered, then refunded: the refund is its own row
    "partially_refunded": "delivered",
    "cancelled": "cancelled",
    "rejected": "cancelled",
}
"""Finished merchant-order states and the simulator's status for them. Orders still in flight
are left for a later extract (their ``updated_at`` moves when they finish)."""

CANCEL_REASON = {"customer": "customer_cancelled", "merchant": "merchant_rejected"}
"""``merchant_orders.cancelled_by`` → the simulator's ``cancel_reason`` (others stay null)."""


@dataclass(frozen=True, slots=True)
class Source:
    """An extracted table: its key, one column or several (the latest batch row per key wins), and
    the columns read."""

    table: str
    key: str | tuple[str, ...]
    columns: dict[str, pl.DataType]


_S, _F, _I = pl.String(), pl.Float64(), pl.Int64()
SOURCES = {
    source.table: source
    for source in (
        Source("cities", "id", {"id": _S, "timezone": _S}),
        Source("users", "id", {"id": _S, "created_at": UTC_TS}),
        Source(
            "merchants",
            "id",
            {
                "id": _S,
                "city_id": _S,
                "category": _S,
                "lat": _F,
                "lng": _F,
                "h3_r9": _S,
                "h3_r7": _S,
                "prep_time_min": _I,
                "eco_packaging": pl.Boolean(),
                "created_at": UTC_TS,
            },
        ),
        Source("couriers", "id", {"id": _S, "city_id": _S, "mode": _S, "created_at": UTC_TS}),
        Source(
            "orders",
            "id",
            {"id": _S, "promo_code": _S, "delivery_lat": _F, "delivery_lng": _F, "match_id": _S},
        ),
        Source(
            "merchant_orders",
            "id",
            {
                "id": _S,
                "parent_id": _S,
                "merchant_id": _S,
                "customer_id": _S,
                "city_id": _S,
                "currency": _S,
                "status": _S,
                "items_minor": _I,
                "delivery_fee_minor": _I,
                "tax_minor": _I,
                "discount_minor": _I,
                "total_minor": _I,
                "distance_m": _I,
                "cancelled_by": _S,
                "created_at": UTC_TS,
                "updated_at": UTC_TS,
            },
        ),
        Source(
            "deliveries",
            "id",
            {
                "id": _S,
                "merchant_order_id": _S,
                "status": _S,
                "courier_id": _S,
                "pickup_lat": _F,
                "pickup_lng": _F,
                "dropoff_lat": _F,
                "dropoff_lng": _F,
                "declines": _I,
                "mode": _S,
                "kg_co2e": _F,
                "baseline_kg_co2e": _F,
                "created_at": UTC_TS,
            },
        ),
        Source("payment_intents", "id", {"id": _S, "order_id": _S}),
        Source(
            "checkout_fraud_assessments",
            "id",
            {"id": _S, "customer_id": _S, "order_id": _S, "fingerprint": _S, "at": UTC_TS},
        ),
        Source("delivery_history", "id", {"id": _S, "delivery_id": _S, "to_status": _S, "at": UTC_TS}),
        Source("order_status_history", "id", {"id": _S, "order_id": _S, "to_status": _S, "at": UTC_TS}),
        Source(
            "outbox",
            "position",
            {"position": _I, "event_type": _S, "city_id": _S, "payload": _S, "occurred_at": UTC_TS},
        ),
    )
}
"""The extracts the mapping reads (each must be listed in ``pipelines.extract.EXTRACT_TABLES``)."""

LIVE_TABLES: tuple[str, ...] = (
    "merchants",
    "couriers",
    "customers",
    "orders",
    "deliveries",
    "search_sessions",
    "search_impressions",
)
"""Lake tables that get a live part. Not mapped (no source in the platform yet, or no way to
read it incrementally): providers, order_items, payments, refunds, reviews."""

SERVED = pl.Struct(
    {
        "match_id": pl.String(),
        "customer_id": pl.String(),
        "local_hour": pl.Int64(),
        "impressions": pl.List(
            pl.Struct(
                {
                    "merchant_id": pl.String(),
                    "position": pl.Int64(),
                    "distance_m": pl.Int64(),
                    "price_level": pl.Int64(),
                    "rating": pl.Float64(),
                    "eco_packaging": pl.Boolean(),
                    "is_favourite": pl.Boolean(),
                }
            )
        ),
    }
)
"""``match.served``; events served before the payload carried distance, price level, rating and
the eco and favourite flags decode with those fields null."""
CLICKED = pl.Struct({"match_id": pl.String(), "merchant_id": pl.String()})
REVIEW_DECIDED = pl.Struct({"intent_id": pl.String(), "decision": pl.String()})
CHECKOUT_REVIEWED = pl.Struct({"assessment_id": pl.String(), "fraud": pl.Boolean()})


def live_path(lake: Path, table: str) -> Path:
    return lake / "live" / f"{table}.parquet"


def read_extract(lake: Path, source: Source) -> pl.DataFrame:
    """The latest extracted version of every row of ``source`` (empty when never extracted).

    Batches are read in the order they were written and may differ in columns (a migration
    added one) or inferred types (a column all null in one batch); only the listed columns
    are kept, cast to one type.
    """
    files = sorted(extract_dir(lake, source.table).glob("batch-*.parquet"))
    frames = [_read_batch(path, source.columns) for path in files]
    return pl.concat([pl.DataFrame(schema=source.columns), *frames]).unique(
        source.key, keep="last", maintain_order=True
    )


def _read_batch(path: Path, columns: dict[str, pl.DataType]) -> pl.DataFrame:
    present = pl.read_parquet_schema(path)
    batch = pl.read_parquet(path, columns=[name for name in columns if name in present])
    return batch.select(
        pl.col(name).cast(dtype) if name in present else pl.lit(None, dtype).alias(name)
        for name, dtype in columns.items()
    )


def conform(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    """``frame`` with exactly the contract's columns, in order and type (absent ones null)."""
    return frame.select(
        pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype).alias(name)
        for name, dtype in CONTRACTS[table].items()
    )


def _local(ts: str, timezones: dict[str, str]) -> pl.Expr:
    """``ts`` as the wall-clock time of the row's ``city_id`` (null for a city without a zone)."""
    local: pl.Expr = pl.lit(None, pl.Datetime("us"))
    for city_id, zone in timezones.items():
        wall = pl.col(ts).dt.convert_time_zone(zone).dt.replace_time_zone(None)
        local = pl.when(pl.col("city_id") == city_id).then(wall).otherwise(local)
    return local


def _elapsed_s(later: str, earlier: str) -> pl.Expr:
    return (pl.col(later) - pl.col(earlier)).dt.total_microseconds() / 1e6


def map_merchants(merchants: pl.DataFrame) -> pl.DataFrame:
    """Listing facts and eco packaging; hidden traits, price level and rating prior do not exist live."""
    return merchants.rename({"id": "merchant_id", "created_at": "opened_at"}).with_columns(
        prep_median_s=pl.col("prep_time_min") * 60.0
    )


def map_couriers(couriers: pl.DataFrame) -> pl.DataFrame:
    """Mode and home city; shifts are switched live, not planned, so the shift columns stay null."""
    return couriers.rename({"id": "courier_id", "created_at": "joined_at"})


def map_deliveries(
    deliveries: pl.DataFrame,
    history: pl.DataFrame,
    merchant_orders: pl.DataFrame,
    order_history: pl.DataFrame,
    merchants: pl.DataFrame,
    couriers: pl.DataFrame,
    timezones: dict[str, str],
) -> pl.DataFrame:
    """Finished deliveries that had a courier, with times from the delivery and order histories."""
    moments = history.group_by("delivery_id").agg(
        accepted_at=pl.col("at").filter(pl.col("to_status") == "assigned").max(),
        at_pickup_at=pl.col("at").filter(pl.col("to_status") == "at_pickup").max(),
        picked_up_at=pl.col("at").filter(pl.col("to_status") == "picked_up").max(),
        delivered_at=pl.col("at").filter(pl.col("to_status") == "delivered").max(),
    )
    ready = (
        order_history.filter(pl.col("to_status") == "ready_for_pickup")
        .group_by("order_id")
        .agg(ready_at=pl.col("at").max())
    )
    orders = merchant_orders.select(
        order_id="id",
        merchant_id="merchant_id",
        city_id="city_id",
        distance_m="distance_m",
        ordered_at="created_at",
    )
    frame = (
        deliveries.filter(
            pl.col("status").is_in(["delivered", "cancelled"]) & pl.col("courier_id").is_not_null()
        )
        .rename({"id": "delivery_id", "merchant_order_id": "order_id"})
        .join(orders, on="order_id", how="inner")
        .join(moments, on="delivery_id", how="left")
        .join(ready, on="order_id", how="left")
        .join(
            merchants.select("merchant_id", merchant_h3_r9="h3_r9", merchant_h3_r7="h3_r7"),
            on="merchant_id",
            how="left",
        )
        .join(couriers.select("courier_id", courier_mode="mode"), on="courier_id", how="left")
    )
    straight = haversine_m(
        frame.select("pickup_lat", "pickup_lng").to_numpy(),
        frame.select("dropoff_lat", "dropoff_lng").to_numpy(),
    )
    local = _local("created_at", timezones)
    delivered = pl.col("status") == "delivered"
    return frame.with_columns(
        mode=pl.coalesce("mode", "courier_mode"),
        hour=local.dt.hour(),
        weekday=local.dt.weekday(),
        day=local.dt.date(),
        straight_m=pl.Series(np.round(straight), dtype=pl.Float64),
        prep_s=_elapsed_s("ready_at", "ordered_at"),
        pickup_travel_s=_elapsed_s("at_pickup_at", "accepted_at"),
        travel_s=pl.when(delivered).then(_elapsed_s("delivered_at", "picked_up_at")),
        duration_s=pl.when(delivered).then(_elapsed_s("delivered_at", "ordered_at")),
        delivered_at=pl.when(delivered).then("delivered_at"),
        co2e_kg="kg_co2e",
        co2e_baseline_kg="baseline_kg_co2e",
        co2e_saved_kg=pl.col("baseline_kg_co2e") - pl.col("kg_co2e"),
    )


def payment_labels(outbox: pl.DataFrame, intents: pl.DataFrame) -> pl.DataFrame:
    """``is_fraud`` per paid order id from reviewers' ``payment.review_decided`` decisions: a
    rejected payment marks its order fraudulent, an approved one honest (the latest decision per
    intent counts)."""
    return (
        outbox.filter(pl.col("event_type") == "payment.review_decided")
        .select(pl.col("payload").str.json_decode(REVIEW_DECIDED).struct.unnest())
        .unique("intent_id", keep="last", maintain_order=True)
        .join(intents.select(intent_id="id", paid_order_id="order_id"), on="intent_id", how="inner")
        .select("paid_order_id", is_fraud=pl.col("decision") == "reject")
    )


def checkout_labels(outbox: pl.DataFrame, assessments: pl.DataFrame) -> pl.DataFrame:
    """``is_fraud`` per checkout (parent order id) from reviewers' verdicts on held checkouts.

    A held checkout places nothing; the verdict (``checkout.reviewed``, the event written with
    ``fraud_label``) is about the customer's cart, and the checkout that retries the same cart
    (same customer and request fingerprint) after it carries the latest verdict given before it
    was placed, as the checkout itself reads it. The verdict is taken from the event because a
    review updates the assessment row without moving its extract cursor. A cart labelled fraud
    usually stays held and so has no order to label.
    """
    reviewed = (
        outbox.filter(pl.col("event_type") == "checkout.reviewed")
        .with_columns(event=pl.col("payload").str.json_decode(CHECKOUT_REVIEWED))
        .select(
            id=pl.col("event").struct.field("assessment_id"),
            is_fraud=pl.col("event").struct.field("fraud"),
            reviewed_at="occurred_at",
        )
        .join(assessments.select("id", "customer_id", "fingerprint"), on="id", how="inner")
        .drop("id")
        .sort("reviewed_at")
    )
    placed = assessments.filter(pl.col("order_id").is_not_null(), pl.col("fingerprint").is_not_null())
    return (
        placed.sort("at")
        .join_asof(
            reviewed,
            left_on="at",
            right_on="reviewed_at",
            by=["customer_id", "fingerprint"],
            strategy="backward",
            check_sortedness=False,  # both sides sorted by time above; Polars cannot check it with ``by``
        )
        .filter(pl.col("is_fraud").is_not_null())
        .select(pl.col("order_id").alias("paid_order_id"), "is_fraud")
    )


def fraud_labels(*labels: pl.DataFrame) -> pl.DataFrame:
    """One ``is_fraud`` per order id from every label source: any fraud verdict wins. Orders
    nobody reviewed get no label."""
    return pl.concat(labels).group_by("paid_order_id").agg(pl.col("is_fraud").any())


def map_orders(
    merchant_orders: pl.DataFrame,
    parents: pl.DataFrame,
    deliveries: pl.DataFrame,
    labels: pl.DataFrame,
    timezones: dict[str, str],
) -> pl.DataFrame:
    """One row per finished merchant order (the simulator's order is one merchant's basket).

    ``subtotal_minor`` is items plus tax, so ``total = subtotal + fee - discount`` holds as in
    the simulator; ``courier_id`` comes from the order's delivery; ``is_fraud`` from the labels
    of the merchant order or else of its checkout (a payment covers either; a checkout review
    labels the checkout). ``match_id`` (the match the checkout named) is kept for attribution.
    """
    local = _local("created_at", timezones)
    return (
        merchant_orders.filter(pl.col("status").is_in(list(ORDER_STATUS)))
        .join(
            parents.select(
                "promo_code",
                "match_id",
                parent_id="id",
                dropoff_lat="delivery_lat",
                dropoff_lng="delivery_lng",
            ),
            on="parent_id",
            how="left",
        )
        .join(deliveries.select("order_id", "courier_id"), left_on="id", right_on="order_id", how="left")
        .join(labels.rename({"is_fraud": "own_label"}), left_on="id", right_on="paid_order_id", how="left")
        .join(
            labels.rename({"is_fraud": "checkout_label"}),
            left_on="parent_id",
            right_on="paid_order_id",
            how="left",
        )
        .with_columns(
            is_fraud=pl.coalesce("own_label", "checkout_label"),
            order_id="id",
            day=local.dt.date(),
            cancel_reason=pl.when(pl.col("status") == "rejected")
            .then(pl.lit("merchant_rejected"))
            .when(pl.col("status") == "cancelled")
            .then(pl.col("cancelled_by").replace_strict(CANCEL_REASON, default=None)),
            cancelled_at=pl.when(pl.col("status").is_in(["cancelled", "rejected"])).then("updated_at"),
            status=pl.col("status").replace_strict(ORDER_STATUS),
            subtotal_minor=pl.col("items_minor") + pl.col("tax_minor"),
        )
    )


class Search(NamedTuple):
    """The search tables, and which session each attributed order came from."""

    sessions: pl.DataFrame
    impressions: pl.DataFrame
    credits: pl.DataFrame
    """``session_id``, ``merchant_id``, ``order_id``: at most one session per order."""


def map_search(
    outbox: pl.DataFrame,
    merchants: pl.DataFrame,
    orders: pl.DataFrame,
    timezones: dict[str, str],
) -> Search:
    """``match.served`` as sessions and their impressions; ``match.clicked`` marks clicks, and
    the orders attributed to a session (:func:`attribute_orders`) mark it converted and their
    merchants' impressions ordered, and clicked too: a checkout that names the match says the
    customer chose that result even when the app logged no click (ordered implies clicked, as in
    the simulator)."""
    served = (
        outbox.filter((pl.col("event_type") == "match.served") & pl.col("city_id").is_not_null())
        .with_columns(event=pl.col("payload").str.json_decode(SERVED))
        .select(
            "city_id",
            pl.col("occurred_at").alias("created_at"),
            pl.col("event").struct.field("match_id").alias("session_id"),
            pl.col("event").struct.field("customer_id"),
            pl.col("event").struct.field("local_hour").alias("hour"),
            pl.col("event").struct.field("impressions"),
        )
        .unique("session_id", keep="first", maintain_order=True)
    )
    clicks = (
        outbox.filter(pl.col("event_type") == "match.clicked")
        .select(pl.col("payload").str.json_decode(CLICKED).struct.unnest())
        .unique()
        .select(session_id="match_id", merchant_id="merchant_id", clicked=pl.lit(True))
    )
    impressions = (
        served.select("session_id", "customer_id", "created_at", "city_id", "impressions")
        .explode("impressions")
        .filter(pl.col("impressions").is_not_null())
        .with_columns(pl.col("impressions").struct.unnest())
        .join(clicks, on=["session_id", "merchant_id"], how="left")
        .with_columns(
            pl.col("clicked").fill_null(False),
            price_level=pl.col("price_level").replace_strict(
                PRICE_LEVEL_OF_QUARTILE, default=None, return_dtype=pl.Float64
            ),
        )
    )
    credits = attribute_orders(impressions, orders)
    first_order = (
        credits.sort("ordered_at", "order_id")
        .unique("session_id", keep="first", maintain_order=True)
        .select("session_id", "order_id")
    )
    local = _local("created_at", timezones)
    sessions = served.join(first_order, on="session_id", how="left").with_columns(
        day=local.dt.date(),
        n_shown=pl.col("impressions").list.len(),
        converted=pl.col("order_id").is_not_null(),
    )
    prep = merchants.select("merchant_id", prep_estimate_s=pl.col("prep_median_s").round())
    ordered = credits.select("session_id", "merchant_id", ordered=pl.lit(True)).unique()
    shown = (
        impressions.join(ordered, on=["session_id", "merchant_id"], how="left")
        .join(prep, on="merchant_id", how="left")
        .with_columns(day=local.dt.date(), ordered=pl.col("ordered").fill_null(False))
        .with_columns(clicked=pl.col("clicked") | pl.col("ordered"))  # ordered from it: it was chosen
    )
    return Search(sessions, shown, credits.select("session_id", "merchant_id", "order_id"))


def attribute_orders(impressions: pl.DataFrame, orders: pl.DataFrame) -> pl.DataFrame:
    """The session each order came from, with its merchant and time.

    An order whose checkout named its match (``orders.match_id``) belongs to that match when its
    merchant was shown there, clicked or not; every merchant order of the cart counts. An order
    without one falls back to :data:`ATTRIBUTION_WINDOW`: the latest session served to the
    customer at most that long before it where they clicked its merchant, and such a guessed
    session converts once (its first order).
    """
    columns = ["session_id", "merchant_id", "order_id", "ordered_at"]
    ordered = orders.select("order_id", "customer_id", "merchant_id", "match_id", ordered_at="created_at")
    named = impressions.join(
        ordered.filter(pl.col("match_id").is_not_null()),
        left_on=["session_id", "customer_id", "merchant_id"],
        right_on=["match_id", "customer_id", "merchant_id"],
        how="inner",
    ).select(columns)
    guessed = (
        impressions.filter("clicked")
        .join(ordered.filter(pl.col("match_id").is_null()), on=["customer_id", "merchant_id"], how="inner")
        .filter(
            pl.col("ordered_at").is_between(pl.col("created_at"), pl.col("created_at") + ATTRIBUTION_WINDOW)
        )
        .sort("created_at")
        .unique("order_id", keep="last", maintain_order=True)  # the latest search before the order
        .sort("ordered_at")
        .unique("session_id", keep="first", maintain_order=True)  # a guessed session converts once
        .select(columns)
    )
    return pl.concat([named, guessed])


def map_customers(users: pl.DataFrame, orders: pl.DataFrame, sessions: pl.DataFrame) -> pl.DataFrame:
    """Every customer who searched or ordered: city of the latest activity, home at the latest
    drop-off (null until the first order), signed up when the account was created."""
    activity = pl.concat(
        [
            orders.select("customer_id", "city_id", "created_at", "dropoff_lat", "dropoff_lng"),
            sessions.select(
                "customer_id",
                "city_id",
                "created_at",
                dropoff_lat=pl.lit(None, pl.Float64),
                dropoff_lng=pl.lit(None, pl.Float64),
            ),
        ]
    ).sort("created_at")
    frame = (
        activity.group_by("customer_id")
        .agg(
            pl.col("city_id").last(),
            pl.col("created_at").first().alias("first_seen"),
            pl.col("dropoff_lat").drop_nulls().last().alias("lat"),
            pl.col("dropoff_lng").drop_nulls().last().alias("lng"),
        )
        .join(users.select(customer_id="id", signup_at="created_at"), on="customer_id", how="left")
        .with_columns(signup_at=pl.coalesce("signup_at", "first_seen"))
        .sort("customer_id")
    )
    located = frame.filter(pl.col("lat").is_not_null())
    points = located.select("lat", "lng").to_numpy()
    cells = located.select(
        "customer_id",
        h3_r9=pl.Series(h3_cells(points, 9), dtype=pl.String),
        h3_r7=pl.Series(h3_cells(points, 7), dtype=pl.String),
    )
    return frame.join(cells, on="customer_id", how="left")


def live_tables(lake: Path) -> dict[str, pl.DataFrame]:
    """Every table of :data:`LIVE_TABLES` from the extracts, conformed to the lake contract."""
    raw = {name: read_extract(lake, source) for name, source in SOURCES.items()}
    timezones = dict(raw["cities"].select("id", "timezone").iter_rows())
    merchants = map_merchants(raw["merchants"])
    couriers = map_couriers(raw["couriers"])
    deliveries = map_deliveries(
        raw["deliveries"],
        raw["delivery_history"],
        raw["merchant_orders"],
        raw["order_status_history"],
        merchants,
        couriers,
        timezones,
    )
    labels = fraud_labels(
        payment_labels(raw["outbox"], raw["payment_intents"]),
        checkout_labels(raw["outbox"], raw["checkout_fraud_assessments"]),
    )
    orders = map_orders(raw["merchant_orders"], raw["orders"], deliveries, labels, timezones)
    deliveries = deliveries.join(orders.select("order_id"), on="order_id", how="semi")  # order unfinished
    sessions, impressions, credits = map_search(raw["outbox"], merchants, orders, timezones)
    orders = orders.join(credits.select("session_id", "order_id"), on="order_id", how="left")
    customers = map_customers(raw["users"], orders, sessions)
    frames = {
        "merchants": merchants,
        "couriers": couriers,
        "customers": customers,
        "orders": orders,
        "deliveries": deliveries,
        "search_sessions": sessions,
        "search_impressions": impressions,
    }
    return {table: conform(frame, table) for table, frame in frames.items()}


def write_live_tables(lake: Path) -> dict[str, int]:
    """Write the live part of each table (or remove a stale one when it has no rows); row counts."""
    counts: dict[str, int] = {}
    for table, frame in live_tables(lake).items():
        path = live_path(lake, table)
        if frame.is_empty():
            path.unlink(missing_ok=True)
        else:
            write_atomic(frame, path)
        counts[table] = frame.height
    return counts
