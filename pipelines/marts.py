"""The DuckDB marts, as data: each mart's SQL, grain, keys, foreign keys and value rules.

Marts read the staging Parquet (``{stg:table}`` placeholders) or earlier marts (by
name). ``build_mart`` creates ``<name>__candidate``, evaluates the mart's checks on
it, and only when every blocking check passes swaps it in, inside one transaction:
a failed or partial build never replaces a good mart. Hidden simulator traits stay
in the lake; the marts hold what an analyst of a real platform could see. Live rows (the
platform's own, ``pipelines/live.py``) leave null what the platform does not record (a
price level, a shift plan, a promise), so rules accept null where live data has none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pipelines.staging import staging_path


@dataclass(frozen=True, slots=True)
class ForeignKey:
    column: str
    parent: str
    parent_column: str


@dataclass(frozen=True, slots=True)
class Mart:
    name: str
    grain: str
    sql: str
    keys: tuple[str, ...]
    not_null: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    rules: tuple[tuple[str, str], ...] = ()
    """(name, SQL condition every row must satisfy)."""
    daily: bool = False
    """Has ``city_id`` and ``day`` columns: gets the freshness and row-count anomaly checks."""
    volume: str = "count(*)"
    """What the row-count anomaly check compares per city and day: the rows, or for a mart with
    one row per day (or per day and mode) the activity those rows count."""
    description: str = ""
    upstream: tuple[str, ...] = field(default=())

    @property
    def staging_tables(self) -> tuple[str, ...]:
        return tuple(sorted(set(re.findall(r"\{stg:(\w+)\}", self.sql))))


def _fk(column: str, parent: str, parent_column: str | None = None) -> ForeignKey:
    return ForeignKey(column, parent, parent_column or column)


MARTS: tuple[Mart, ...] = (
    Mart(
        "customers",
        "one row per customer",
        "SELECT customer_id, city_id, lat, lng, h3_r9, h3_r7, signup_at, favourite_merchant_id "
        "FROM {stg:customers}",
        keys=("customer_id",),
        not_null=("city_id", "signup_at"),
        rules=(
            (
                "lat_lng_valid",
                "(lat IS NULL AND lng IS NULL) OR (lat BETWEEN -90 AND 90 AND lng BETWEEN -180 AND 180)",
            ),
        ),
        description="Customers and where they live (H3 r7/r9).",
    ),
    Mart(
        "merchants",
        "one row per merchant",
        "SELECT merchant_id, city_id, category, lat, lng, h3_r9, h3_r7, prep_median_s, price_level, "
        "rating_prior, eco_packaging, opened_at FROM {stg:merchants}",
        keys=("merchant_id",),
        not_null=("city_id", "category"),
        rules=(("price_level_positive", "price_level IS NULL OR price_level > 0"),),
        description="Merchants with category, location and listing attributes.",
    ),
    Mart(
        "couriers",
        "one row per courier",
        "SELECT courier_id, city_id, mode, shift_start_hour, shift_hours, joined_at FROM {stg:couriers}",
        keys=("courier_id",),
        not_null=("city_id", "mode"),
        rules=(("shift_hours_range", "shift_hours IS NULL OR shift_hours BETWEEN 1 AND 24"),),
        description="Couriers with their vehicle mode and shift.",
    ),
    Mart(
        "orders",
        "one row per order",
        "SELECT order_id, city_id, day, session_id, customer_id, merchant_id, courier_id, created_at, "
        "status, "
        "cancel_reason, cancelled_at, currency, item_count, subtotal_minor, delivery_fee_minor, "
        "discount_minor, total_minor, promo_code, payment_method, device_id, new_device, "
        "phone_changed_recently, dropoff_lat, dropoff_lng, rain, promo_day, is_fraud, fraud_type "
        "FROM {stg:orders}",
        keys=("order_id",),
        not_null=("city_id", "day", "customer_id", "merchant_id", "created_at", "status", "currency"),
        foreign_keys=(
            _fk("customer_id", "customers"),
            _fk("merchant_id", "merchants"),
            _fk("courier_id", "couriers"),
        ),
        rules=(
            ("status_known", "status IN ('delivered', 'cancelled')"),
            ("money_non_negative", "subtotal_minor >= 0 AND delivery_fee_minor >= 0 AND discount_minor >= 0"),
            ("total_adds_up", "total_minor = subtotal_minor + delivery_fee_minor - discount_minor"),
        ),
        daily=True,
        description="Orders with money in minor units, status, payment method and fraud label.",
    ),
    Mart(
        "order_items",
        "one row per order line",
        "SELECT order_id, line_no, city_id, day, sku, quantity, unit_price_minor, line_total_minor, currency "
        "FROM {stg:order_items}",
        keys=("order_id", "line_no"),
        not_null=("sku", "currency"),
        foreign_keys=(_fk("order_id", "orders"),),
        rules=(
            ("quantity_positive", "quantity > 0"),
            ("line_total", "line_total_minor = unit_price_minor * quantity"),
        ),
        daily=True,
        description="Order lines.",
    ),
    Mart(
        "deliveries",
        "one row per delivery (an order that got a courier)",
        "SELECT * EXCLUDE (merchant_load) FROM {stg:deliveries}",
        keys=("delivery_id",),
        not_null=("order_id", "courier_id", "mode", "created_at"),
        foreign_keys=(
            _fk("order_id", "orders"),
            _fk("courier_id", "couriers"),
            _fk("merchant_id", "merchants"),
        ),
        rules=(
            (
                "durations_positive",
                "(prep_s IS NULL OR prep_s >= 0) AND (duration_s IS NULL OR duration_s > 0)",
            ),
            (
                "delivered_has_times",
                "status <> 'delivered' OR "
                "(delivered_at IS NOT NULL AND (promised_s IS NULL OR on_time IS NOT NULL))",
            ),
            ("co2e_non_negative", "co2e_kg IS NULL OR co2e_kg >= 0"),
        ),
        daily=True,
        description="Deliveries: mode, distances, prep and travel times, promise, on-time flag, CO2e.",
    ),
    Mart(
        "payments",
        "one row per payment attempt",
        "SELECT payment_id, order_id, city_id, day, method, provider, status, amount_minor, currency, "
        "created_at, captured_at FROM {stg:payments}",
        keys=("payment_id",),
        not_null=("order_id", "method", "status", "currency"),
        foreign_keys=(_fk("order_id", "orders"),),
        rules=(("amount_non_negative", "amount_minor >= 0"),),
        daily=True,
        description="Payments (card fingerprints and devices stay in the lake).",
    ),
    Mart(
        "refunds",
        "one row per refund",
        "SELECT refund_id, order_id, payment_id, city_id, day, amount_minor, currency, reason, created_at "
        "FROM {stg:refunds}",
        keys=("refund_id",),
        not_null=("order_id", "payment_id", "reason"),
        foreign_keys=(_fk("order_id", "orders"), _fk("payment_id", "payments")),
        rules=(("amount_positive", "amount_minor > 0"),),
        daily=True,
        description="Refunds with their reason.",
    ),
    Mart(
        "reviews",
        "one row per review",
        "SELECT review_id, order_id, city_id, day, customer_id, merchant_id, courier_id, rating, text, "
        "created_at FROM {stg:reviews}",
        keys=("review_id",),
        not_null=("order_id", "rating"),
        foreign_keys=(_fk("order_id", "orders"), _fk("merchant_id", "merchants")),
        rules=(("rating_1_to_5", "rating BETWEEN 1 AND 5"),),
        daily=True,
        description="Ratings and review text.",
    ),
    Mart(
        "search_sessions",
        "one row per search session",
        "SELECT session_id, city_id, day, customer_id, created_at, hour, customer_h3_r9, rain, n_shown, "
        "converted, order_id FROM {stg:search_sessions}",
        keys=("session_id",),
        not_null=("customer_id", "created_at"),
        foreign_keys=(_fk("customer_id", "customers"), _fk("order_id", "orders")),
        rules=(("converted_has_order", "converted = (order_id IS NOT NULL)"),),
        daily=True,
        description="Search sessions and whether they converted.",
    ),
    Mart(
        "search_impressions",
        "one row per merchant shown in a session",
        "SELECT * FROM {stg:search_impressions}",
        keys=("session_id", "position"),
        not_null=("merchant_id",),
        foreign_keys=(_fk("session_id", "search_sessions"), _fk("merchant_id", "merchants")),
        rules=(
            ("position_range", "position BETWEEN 1 AND 50"),
            ("ordered_implies_clicked", "NOT ordered OR clicked"),
        ),
        daily=True,
        description="What each session was shown (position), clicked and ordered: ranking ground truth.",
    ),
    Mart(
        "daily_city",
        "one row per city and day",
        """
        WITH o AS (
            SELECT city_id, day, any_value(currency) AS currency, count(*) AS orders,
                   count(*) FILTER (WHERE status = 'delivered') AS delivered_orders,
                   count(*) FILTER (WHERE status = 'cancelled') AS cancelled_orders,
                   coalesce(sum(total_minor) FILTER (WHERE status = 'delivered'), 0) AS gmv_minor,
                   count(*) FILTER (WHERE is_fraud) AS fraud_orders
            FROM orders GROUP BY ALL
        ), d AS (
            SELECT d.city_id, d.day,
                   avg(d.on_time::INT) FILTER (WHERE d.status = 'delivered') AS on_time_rate,
                   count(DISTINCT d.courier_id) AS active_couriers,
                   sum(epoch(coalesce(d.delivered_at, d.accepted_at) - d.accepted_at)) AS busy_s
            FROM deliveries d GROUP BY ALL
        ), shifts AS (
            SELECT x.city_id, x.day, sum(c.shift_hours) * 3600 AS shift_s
            FROM (SELECT DISTINCT city_id, day, courier_id FROM deliveries) x
            JOIN couriers c USING (courier_id) GROUP BY ALL
        ), r AS (
            SELECT city_id, day, count(DISTINCT order_id) AS refunded_orders,
                   sum(amount_minor) AS refunds_minor
            FROM refunds GROUP BY ALL
        )
        SELECT o.city_id, o.day, o.currency, o.orders, o.delivered_orders, o.gmv_minor,
               CASE WHEN o.delivered_orders > 0 THEN o.gmv_minor // o.delivered_orders END AS aov_minor,
               d.on_time_rate, o.cancelled_orders / o.orders AS cancellation_rate,
               coalesce(r.refunded_orders, 0) / o.orders AS refund_rate,
               coalesce(r.refunds_minor, 0) AS refunds_minor,
               d.active_couriers, least(d.busy_s / nullif(s.shift_s, 0), 1.0) AS courier_utilisation,
               o.fraud_orders / o.orders AS fraud_rate
        FROM o LEFT JOIN d USING (city_id, day) LEFT JOIN shifts s USING (city_id, day)
        LEFT JOIN r USING (city_id, day)
        """,
        keys=("city_id", "day"),
        not_null=("orders", "gmv_minor", "currency"),
        rules=(
            (
                "rates_in_0_1",
                "cancellation_rate BETWEEN 0 AND 1 AND refund_rate BETWEEN 0 AND 1 "
                "AND (on_time_rate IS NULL OR on_time_rate BETWEEN 0 AND 1)",
            ),
            ("utilisation_in_0_1", "courier_utilisation IS NULL OR courier_utilisation BETWEEN 0 AND 1"),
        ),
        daily=True,
        volume="sum(orders)",
        description="Headline KPIs per city and day: GMV, orders, AOV, on-time, cancellations, refunds, "
        "utilisation.",
        upstream=("orders", "deliveries", "refunds", "couriers"),
    ),
    Mart(
        "merchant_daily",
        "one row per merchant and day",
        """
        SELECT o.merchant_id, o.city_id, o.day, any_value(o.currency) AS currency, count(*) AS orders,
               count(*) FILTER (WHERE o.status = 'delivered') AS delivered_orders,
               coalesce(sum(o.total_minor) FILTER (WHERE o.status = 'delivered'), 0) AS gmv_minor,
               count(*) FILTER (WHERE o.cancel_reason = 'merchant_rejected') / count(*) AS rejection_rate,
               count(*) FILTER (WHERE o.status = 'cancelled') / count(*) AS cancellation_rate,
               median(d.prep_s) AS prep_p50_s, quantile_cont(d.prep_s, 0.9) AS prep_p90_s,
               avg(d.on_time::INT) FILTER (WHERE d.status = 'delivered') AS on_time_rate,
               avg(v.rating) AS avg_rating, count(v.review_id) AS reviews
        FROM orders o LEFT JOIN deliveries d USING (order_id) LEFT JOIN reviews v USING (order_id)
        GROUP BY o.merchant_id, o.city_id, o.day
        """,
        keys=("merchant_id", "day"),
        foreign_keys=(_fk("merchant_id", "merchants"),),
        rules=(("rating_range", "avg_rating IS NULL OR avg_rating BETWEEN 1 AND 5"),),
        daily=True,
        description="Merchant performance per day: volume, GMV, prep time p50/p90, cancellations, rating.",
        upstream=("orders", "deliveries", "reviews"),
    ),
    Mart(
        "courier_daily",
        "one row per courier and day",
        """
        SELECT courier_id, city_id, day, any_value(mode) AS mode, count(*) AS deliveries,
               count(*) FILTER (WHERE status = 'delivered') AS completed,
               avg(1.0 / (1 + declines)) AS acceptance_rate,
               avg(on_time::INT) FILTER (WHERE status = 'delivered') AS on_time_rate,
               sum(distance_m) FILTER (WHERE status = 'delivered') / 1000.0 AS distance_km,
               sum(distance_m / 1000.0) FILTER (WHERE status = 'delivered')
                 / nullif(sum(travel_s) FILTER (WHERE status = 'delivered'), 0) * 3600 AS avg_speed_kmh,
               sum(epoch(coalesce(delivered_at, accepted_at) - accepted_at)) / 3600.0 AS busy_hours,
               coalesce(sum(co2e_kg), 0) AS co2e_kg
        FROM deliveries GROUP BY courier_id, city_id, day
        """,
        keys=("courier_id", "day"),
        foreign_keys=(_fk("courier_id", "couriers"),),
        rules=(("acceptance_range", "acceptance_rate BETWEEN 0 AND 1"),),
        daily=True,
        description="Courier performance per day: deliveries, acceptance, on-time, speed, busy hours, CO2e.",
        upstream=("deliveries",),
    ),
    Mart(
        "sustainability_daily",
        "one row per city, day and mode",
        """
        SELECT city_id, day, mode, count(*) AS deliveries, sum(distance_m) / 1000.0 AS distance_km,
               sum(co2e_kg) AS co2e_kg, sum(co2e_baseline_kg) AS co2e_baseline_kg,
               sum(co2e_saved_kg) AS co2e_saved_kg
        FROM deliveries WHERE status = 'delivered' GROUP BY ALL
        """,
        keys=("city_id", "day", "mode"),
        not_null=("co2e_kg", "co2e_baseline_kg"),
        rules=(("mode_known", "mode IN ('foot', 'bicycle', 'e_bike', 'ev_scooter', 'motorbike', 'car')"),),
        daily=True,
        volume="sum(deliveries)",
        description="CO2e emitted and saved against an all-motorbike fleet, per city, day and mode.",
        upstream=("deliveries",),
    ),
)

MARTS_BY_NAME: dict[str, Mart] = {mart.name: mart for mart in MARTS}


def upstream_marts(mart: Mart) -> tuple[str, ...]:
    """Marts this one reads (SQL references) or checks against (foreign keys)."""
    return tuple(
        dict.fromkeys((*mart.upstream, *(fk.parent for fk in mart.foreign_keys if fk.parent != mart.name)))
    )


def render_sql(mart: Mart, lake: Path) -> str:
    """Replace ``{stg:table}`` with a ``read_parquet`` of the staging file."""
    return re.sub(
        r"\{stg:(\w+)\}",
        lambda match: f"read_parquet('{staging_path(lake, match.group(1)).as_posix()}')",
        mart.sql,
    )


def candidate_name(mart: Mart) -> str:
    return f"{mart.name}__candidate"


def build_candidate(con: duckdb.DuckDBPyConnection, mart: Mart, lake: Path) -> int:
    """Create the candidate table; returns its row count. The live mart is untouched."""
    con.execute(f'CREATE OR REPLACE TABLE "{candidate_name(mart)}" AS {render_sql(mart, lake)}')
    row = con.execute(f'SELECT count(*) FROM "{candidate_name(mart)}"').fetchone()
    return int(row[0]) if row else 0


def swap_in(con: duckdb.DuckDBPyConnection, mart: Mart) -> None:
    """Replace the live mart with the candidate in one transaction (readers see old or new)."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f'DROP TABLE IF EXISTS "{mart.name}"')
        con.execute(f'ALTER TABLE "{candidate_name(mart)}" RENAME TO "{mart.name}"')
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def discard_candidate(con: duckdb.DuckDBPyConnection, mart: Mart) -> None:
    con.execute(f'DROP TABLE IF EXISTS "{candidate_name(mart)}"')
