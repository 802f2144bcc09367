"""Training rows per model from the lake's tables: entity keys, ``event_timestamp``, labels, in-row facts.

The rows are what the platform knew when it had to decide (an order at checkout, a
session's shown list); the caller adds history through the model's FeatureService
(``features.store.historical``), so each row only sees features from before its time.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from features.transforms.tables import hour_key
from features.transforms.windows import EVENT_TIMESTAMP


def _order_context(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    merchants = tables["merchants"].select(
        "merchant_id", "category", merchant_lat="lat", merchant_lng="lng", city="city_id"
    )
    return tables["orders"].join(merchants, on="merchant_id", how="left")


def eta_rows(tables: Mapping[str, pl.LazyFrame]) -> pl.DataFrame:
    """Delivered orders: total minutes from checkout to the door, with routing and request inputs."""
    orders = _order_context(tables).select(
        "order_id",
        "customer_id",
        "category",
        "merchant_lat",
        "merchant_lng",
        "dropoff_lat",
        "dropoff_lng",
        "city",
        "currency",
    )
    return (
        tables["deliveries"]
        .filter(pl.col("status") == "delivered")
        .join(orders, on="order_id", how="inner")
        .select(
            "order_id",
            "merchant_id",
            "courier_id",
            "city",
            pl.col("created_at").alias(EVENT_TIMESTAMP),
            hour_key("merchant_id").alias("merchant_hour"),
            (pl.col("merchant_h3_r7") + pl.lit("@") + pl.col("hour").cast(pl.String).str.zfill(2)).alias(
                "cell_hour"
            ),
            "merchant_lat",
            "merchant_lng",
            "dropoff_lat",
            "dropoff_lng",
            pl.col("hour").cast(pl.Int64).alias("local_hour"),
            pl.col("weekday").cast(pl.Int64),
            pl.col("rain").cast(pl.Int64),
            "category",
            "mode",
            pl.col("distance_m").cast(pl.Float64),
            pl.col("promised_s").cast(pl.Float64),
            pl.col("duration_s").cast(pl.Float64),
            pl.col("on_time"),
            pl.col("co2e_kg"),
            pl.col("co2e_baseline_kg"),
            "currency",
        )
        .sort(EVENT_TIMESTAMP)
        .collect()
    )


def green_rows(tables: Mapping[str, pl.LazyFrame]) -> pl.DataFrame:
    """The ETA rows whose on-time outcome is known (live deliveries carry no promise to judge)."""
    return eta_rows(tables).filter(pl.col("on_time").is_not_null())


def fraud_rows(tables: Mapping[str, pl.LazyFrame]) -> pl.DataFrame:
    """Every labelled order at checkout: the simulator's fraud truth, or a reviewer's decision on a
    live payment (``pipelines/live.py``); live orders nobody reviewed carry no label and are left out."""
    customers = tables["customers"].select("customer_id", home_lat="lat", home_lng="lng")
    device_burst = (
        tables["orders"]
        .sort("created_at")
        .rolling("created_at", period="1h", group_by="device_id")
        .agg(device_orders_1h=pl.len())
    )
    return (
        _order_context(tables)
        .filter(pl.col("is_fraud").is_not_null())
        .join(customers, on="customer_id", how="left")
        .join(device_burst.unique(["device_id", "created_at"]), on=["device_id", "created_at"], how="left")
        .select(
            "order_id",
            "customer_id",
            "merchant_id",
            pl.col("created_at").alias(EVENT_TIMESTAMP),
            pl.col("total_minor").cast(pl.Float64),
            pl.col("discount_minor").cast(pl.Float64),
            pl.col("item_count").cast(pl.Float64),
            pl.col("new_device").cast(pl.Float64),
            pl.col("phone_changed_recently").cast(pl.Float64),
            pl.col("device_orders_1h").cast(pl.Float64),
            (
                ((pl.col("dropoff_lat") - pl.col("home_lat")) * 111_000) ** 2
                + ((pl.col("dropoff_lng") - pl.col("home_lng")) * 101_000) ** 2
            )
            .sqrt()
            .alias("dropoff_from_home_m"),
            pl.col("promo_code").fill_null("none"),
            "payment_method",
            "category",
            pl.col("is_fraud").cast(pl.Int64).alias("label"),
            "fraud_type",
        )
        .sort(EVENT_TIMESTAMP)
        .collect()
    )


def ranker_rows(tables: Mapping[str, pl.LazyFrame]) -> pl.DataFrame:
    """One row per shown merchant per search session; relevance 2 ordered, 1 clicked, 0 shown."""
    return (
        tables["search_impressions"]
        .join(
            tables["search_sessions"].select("session_id", "customer_id", "created_at", "hour", "rain"),
            on="session_id",
        )
        .select(
            "session_id",
            "customer_id",
            "merchant_id",
            pl.col("created_at").alias(EVENT_TIMESTAMP),
            pl.col("position").cast(pl.Float64),
            pl.col("distance_m").cast(pl.Float64),
            pl.col("price_level").cast(pl.Float64),
            pl.col("rating").cast(pl.Float64),
            pl.col("prep_estimate_s").cast(pl.Float64),
            pl.col("eco_packaging").cast(pl.Float64),
            pl.col("is_favourite").cast(pl.Float64),
            pl.col("hour").cast(pl.Float64),
            pl.col("rain").cast(pl.Float64),
            (
                pl.col("ordered").cast(pl.Int64) * 2 + (pl.col("clicked") & ~pl.col("ordered")).cast(pl.Int64)
            ).alias("relevance"),
        )
        .sort(EVENT_TIMESTAMP, "session_id", "position")
        .collect()
    )
