"""The feature tables: one trailing-window snapshot table per feature view, from the lake's tables.

Every function is a pure Polars lazy transform of the lake frames (the caller scans
the staging Parquet or passes frames in tests) and returns ``event_timestamp`` plus
the view's join keys and features. Column names here are the Feast feature names.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from features.transforms.windows import trailing_daily

LOW_EMISSION_MODES: tuple[str, ...] = ("foot", "bicycle", "e_bike")
"""Modes the sustainability model asks about (no tailpipe, little or no electricity)."""


def hour_key(entity: str) -> pl.Expr:
    """``<entity>@HH``: the join key of per-hour views (merchant-hour, cell-hour)."""
    return pl.col(entity) + pl.lit("@") + pl.col("hour").cast(pl.String).str.zfill(2)


def merchant_stats(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """Kitchen speed, acceptance, cancellation, rating and volume over 28 days per merchant."""
    deliveries = tables["deliveries"].with_columns(
        ready_at=pl.col("created_at") + pl.duration(seconds=pl.col("prep_s"))
    )
    prep = trailing_daily(
        deliveries,
        known_at="ready_at",
        keys=["merchant_id"],
        aggs=[
            pl.col("prep_s").median().alias("merchant_prep_p50_s"),
            pl.col("prep_s").quantile(0.9).alias("merchant_prep_p90_s"),
            pl.col("on_time").cast(pl.Float64).mean().alias("merchant_on_time_rate"),
        ],
    )
    orders = tables["orders"].with_columns(
        settled_at=pl.coalesce("cancelled_at", pl.col("created_at") + pl.duration(hours=2))
    )
    volume = trailing_daily(
        orders,
        known_at="settled_at",
        keys=["merchant_id"],
        aggs=[
            pl.len().cast(pl.Int64).alias("merchant_orders_28d"),
            (pl.col("cancel_reason") == "merchant_rejected")
            .fill_null(False)
            .not_()
            .cast(pl.Float64)
            .mean()
            .alias("merchant_acceptance_rate"),
            (pl.col("status") == "cancelled").cast(pl.Float64).mean().alias("merchant_cancel_rate"),
        ],
    )
    rating = trailing_daily(
        tables["reviews"],
        known_at="created_at",
        keys=["merchant_id"],
        aggs=[
            pl.col("rating").cast(pl.Float64).mean().alias("merchant_rating_28d"),
            pl.len().cast(pl.Int64).alias("merchant_reviews_28d"),
        ],
    )
    return _outer(volume, [prep, rating], ["merchant_id"])


def merchant_hour_stats(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """Load and kitchen speed of a merchant at a local hour of day (the merchant-hour entity)."""
    deliveries = tables["deliveries"].with_columns(
        ready_at=pl.col("created_at") + pl.duration(seconds=pl.col("prep_s")),
        merchant_hour=hour_key("merchant_id"),
    )
    return trailing_daily(
        deliveries,
        known_at="ready_at",
        keys=["merchant_hour"],
        aggs=[
            pl.col("prep_s").median().alias("merchant_hour_prep_p50_s"),
            pl.col("merchant_load").cast(pl.Float64).mean().alias("merchant_hour_load"),
            pl.len().cast(pl.Int64).alias("merchant_hour_orders_28d"),
        ],
    )


def courier_stats(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """Speed (by the courier's mode), punctuality and acceptance over 28 days per courier."""
    deliveries = tables["deliveries"].with_columns(
        kmh=pl.col("distance_m") / 1000 / (pl.col("travel_s") / 3600)
    )
    return trailing_daily(
        deliveries.filter(pl.col("status") == "delivered"),
        known_at="delivered_at",
        keys=["courier_id"],
        aggs=[
            pl.col("kmh").median().alias("courier_speed_kmh"),
            pl.col("on_time").cast(pl.Float64).mean().alias("courier_on_time_rate"),
            (pl.col("declines") == 0).cast(pl.Float64).mean().alias("courier_acceptance_rate"),
            pl.len().cast(pl.Int64).alias("courier_deliveries_28d"),
            pl.col("mode").last().alias("courier_mode"),
        ],
    )


def customer_stats(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """Tenure, basket, refund rate, devices and cards seen, and taste (eco, price) over 90 days."""
    merchants = tables["merchants"].select("merchant_id", "eco_packaging", "price_level")
    payments = tables["payments"].select("order_id", "card_fingerprint")
    refunds = tables["refunds"].group_by("order_id").agg(refunded=pl.lit(True))
    orders = (
        tables["orders"]
        .join(merchants, on="merchant_id", how="left")
        .join(payments, on="order_id", how="left")
        .join(refunds, on="order_id", how="left")
        .join(tables["customers"].select("customer_id", "signup_at"), on="customer_id", how="left")
        .with_columns(pl.col("refunded").fill_null(False))
    )
    window = trailing_daily(
        orders,
        known_at="created_at",
        keys=["customer_id"],
        days=90,
        aggs=[
            pl.len().cast(pl.Int64).alias("customer_orders_90d"),
            pl.col("subtotal_minor").cast(pl.Float64).mean().alias("customer_basket_mean_minor"),
            pl.col("refunded").cast(pl.Float64).mean().alias("customer_refund_rate"),
            pl.col("device_id").n_unique().cast(pl.Int64).alias("customer_devices_seen"),
            pl.col("card_fingerprint").drop_nulls().n_unique().cast(pl.Int64).alias("customer_cards_seen"),
            pl.col("eco_packaging").cast(pl.Float64).mean().alias("customer_eco_share"),
            pl.col("price_level").mean().alias("customer_price_level_mean"),
            pl.col("signup_at").first().alias("signup_at"),
        ],
    )
    return window.with_columns(
        customer_tenure_days=(pl.col("event_timestamp") - pl.col("signup_at")).dt.total_hours() / 24.0
    ).drop("signup_at")


def cell_hour_stats(tables: Mapping[str, pl.LazyFrame]) -> pl.LazyFrame:
    """Demand, courier supply and congestion per H3 r7 cell at a local hour (the cell-hour entity)."""
    deliveries = (
        tables["deliveries"].rename({"merchant_h3_r7": "h3_r7"}).with_columns(cell_hour=hour_key("h3_r7"))
    )
    return trailing_daily(
        deliveries,
        known_at="delivered_at",
        keys=["cell_hour"],
        aggs=[
            pl.len().cast(pl.Int64).alias("cell_demand_28d"),
            pl.col("courier_id").n_unique().cast(pl.Int64).alias("cell_supply_28d"),
            pl.col("congestion").cast(pl.Float64).mean().alias("cell_congestion"),
            (pl.col("travel_s") / pl.col("distance_m")).median().alias("cell_s_per_m"),
        ],
    )


def _outer(base: pl.LazyFrame, others: list[pl.LazyFrame], keys: list[str]) -> pl.LazyFrame:
    """Join windows of one entity; a day missing from one of them carries that entity's last value."""
    on = [*keys, "event_timestamp"]
    for other in others:
        base = base.join(other, on=on, how="full", coalesce=True)
    return base.sort(on).with_columns(pl.exclude(on).forward_fill().over(keys))


FEATURE_TABLES = {
    "merchant_stats": merchant_stats,
    "merchant_hour_stats": merchant_hour_stats,
    "courier_stats": courier_stats,
    "customer_stats": customer_stats,
    "cell_hour_stats": cell_hour_stats,
}
"""Feature view name -> transform; each writes ``<features_dir>/<name>.parquet`` (see ``features.build``)."""
