"""Real traffic reaches staging, the marts and the training rows beside simulated history.

A live platform is arranged in a real PostgreSQL (merchants, a courier, a delivered and a
cancelled order with their histories, three served matches and a click, an order that names
its match, a checkout cleared by a reviewer), then the whole graph is materialised with
Dagster: extract → live mapping → staging → marts.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import h3
import polars as pl
import psycopg
import pytest

from pipelines.definitions import build_definitions
from pipelines.extract import extract_dir
from pipelines.live import live_path
from pipelines.resources import lake_path, warehouse_path
from pipelines.runner import PipelineReport, execute, run_pipeline
from pipelines.simulation.run import SimulationSpec
from pipelines.staging import staging_path

pytestmark = pytest.mark.slow
SPEC = SimulationSpec(("kathmandu",), date(2026, 2, 2), 2, orders_per_day=200, seed=5)
T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)  # 11:45 in Kathmandu


@dataclass
class Live:
    """The ids of what was arranged in PostgreSQL."""

    customer: str
    merchants: list[str]
    courier: str
    delivered: str
    cancelled: str
    in_flight: str
    delivery: str
    converted_match: str
    browsing_match: str
    named_match: str


@dataclass
class Built:
    live: Live
    url: str
    defs: dg.Definitions
    instance: dg.DagsterInstance
    lake: Path
    warehouse: Path
    report: PipelineReport

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            return con.execute(sql).fetchall()


def _user(conn: psycopg.Connection[tuple[object, ...]], name: str) -> uuid.UUID:
    user = uuid.uuid4()
    conn.execute(
        "INSERT INTO users (id, display_name, created_at) VALUES (%s, %s, %s)",
        (user, name, T0 - timedelta(days=9)),
    )
    return user


def _merchant(
    conn: psycopg.Connection[tuple[object, ...]], owner: uuid.UUID, lat: float, lng: float
) -> uuid.UUID:
    merchant = uuid.uuid4()
    conn.execute(
        "INSERT INTO merchants (id, city_id, kind, category, name, owner_user_id, status, lat, lng, "
        "h3_r7, h3_r9, prep_time_min, created_at) VALUES (%s, 'kathmandu', 'merchant', 'restaurant', "
        "'Momo', %s, 'approved', %s, %s, %s, %s, 20, %s)",
        (
            merchant,
            owner,
            lat,
            lng,
            h3.latlng_to_cell(lat, lng, 7),
            h3.latlng_to_cell(lat, lng, 9),
            T0 - timedelta(days=30),
        ),
    )
    return merchant


def _order(
    conn: psycopg.Connection[tuple[object, ...]],
    customer: uuid.UUID,
    merchant: uuid.UUID,
    status: str,
    at: datetime,
    match: uuid.UUID | None = None,
) -> uuid.UUID:
    """A checkout of one merchant's basket (naming the match it came from, if any); its child id."""
    parent, child = uuid.uuid4(), uuid.uuid4()
    conn.execute(
        "INSERT INTO orders (id, customer_id, city_id, currency, delivery_lat, delivery_lng, items_minor, "
        "delivery_fee_minor, tax_minor, discount_minor, total_minor, promo_code, match_id, created_at) "
        "VALUES (%s, %s, 'kathmandu', 'NPR', 27.70, 85.32, 50000, 6000, 6500, 5000, 57500, 'WELCOME', "
        "%s, %s)",
        (parent, customer, match, at),
    )
    conn.execute(
        "INSERT INTO merchant_orders (id, parent_id, merchant_id, customer_id, city_id, currency, status, "
        "items_minor, delivery_fee_minor, tax_minor, discount_minor, total_minor, distance_m, accept_by, "
        "cancelled_by, created_at, updated_at) VALUES (%s, %s, %s, %s, 'kathmandu', 'NPR', %s, 50000, 6000, "
        "6500, 5000, 57500, 2100, %s, %s, %s, %s)",
        (
            child,
            parent,
            merchant,
            customer,
            status,
            at + timedelta(minutes=5),
            "customer" if status == "cancelled" else None,
            at,
            at + timedelta(minutes=40),
        ),
    )
    return child


def _event(
    conn: psycopg.Connection[tuple[object, ...]],
    kind: str,
    match: uuid.UUID,
    payload: dict[str, object],
    at: datetime,
) -> None:
    conn.execute(
        "INSERT INTO outbox (event_id, event_type, aggregate_type, aggregate_id, city_id, payload, "
        "occurred_at) VALUES (%s, %s, 'match', %s, 'kathmandu', %s, %s)",
        (uuid.uuid4(), kind, match, json.dumps(payload), at),
    )


def arrange_live_platform(url: str) -> Live:
    with psycopg.connect(url, autocommit=True) as conn:
        customer, owner, rider = _user(conn, "Asha"), _user(conn, "Owner"), _user(conn, "Rider")
        merchants = [_merchant(conn, owner, 27.71, 85.31), _merchant(conn, owner, 27.69, 85.33)]
        courier = uuid.uuid4()
        conn.execute(
            "INSERT INTO couriers (id, user_id, city_id, status, mode, bag_slots, max_weight_g, documents, "
            "created_at) VALUES (%s, %s, 'kathmandu', 'approved', 'bicycle', 2, 8000, '[]', %s)",
            (courier, rider, T0 - timedelta(days=20)),
        )
        converted, browsing = uuid.uuid4(), uuid.uuid4()
        shown = [
            {"merchant_id": str(m), "position": i + 1, "score": 1.0 - i / 10} for i, m in enumerate(merchants)
        ]
        _event(
            conn,
            "match.served",
            converted,
            {
                "match_id": str(converted),
                "customer_id": str(customer),
                "local_hour": 11,
                "impressions": shown,
                "model": None,
            },
            T0,
        )
        _event(
            conn,
            "match.clicked",
            converted,
            {
                "match_id": str(converted),
                "customer_id": str(customer),
                "merchant_id": str(merchants[1]),
                "position": 2,
            },
            T0 + timedelta(seconds=30),
        )
        _event(
            conn,
            "match.served",
            browsing,
            {
                "match_id": str(browsing),
                "customer_id": str(customer),
                "local_hour": 12,
                "impressions": shown[:1],
            },
            T0 + timedelta(hours=1),
        )
        named = uuid.uuid4()  # what the customer saw, as match.served now records it; nothing clicked
        seen = {
            "distance_m": 850,
            "price_level": 4,
            "rating": 4.6,
            "eco_packaging": True,
            "is_favourite": False,
        }
        _event(
            conn,
            "match.served",
            named,
            {
                "match_id": str(named),
                "customer_id": str(customer),
                "local_hour": 13,
                "impressions": [
                    {"merchant_id": str(merchants[0]), "position": 1, "score": 0.9, **seen},
                    {
                        "merchant_id": str(merchants[1]),
                        "position": 2,
                        "score": 0.4,
                        **seen,
                        "price_level": 1,
                        "rating": None,
                        "eco_packaging": False,
                        "is_favourite": True,
                    },
                ],
            },
            T0 + timedelta(hours=1, minutes=30),
        )
        delivered = _order(conn, customer, merchants[1], "delivered", T0 + timedelta(minutes=2))
        cancelled = _order(conn, customer, merchants[0], "cancelled", T0 + timedelta(hours=3))
        # names its match, 2.5 h after it was served (past the window); still preparing: not staged yet
        in_flight = _order(conn, customer, merchants[0], "preparing", T0 + timedelta(hours=4), named)
        _cleared_by_review(conn, customer, cancelled, T0 + timedelta(hours=3))
        ready = T0 + timedelta(minutes=22)
        conn.execute(
            "INSERT INTO order_status_history (id, order_id, city_id, to_status, actor_kind, at) "
            "VALUES (%s, %s, 'kathmandu', 'ready_for_pickup', 'merchant', %s)",
            (uuid.uuid4(), delivered, ready),
        )
        intent = uuid.uuid4()
        conn.execute(
            "INSERT INTO payment_intents (id, city_id, customer_id, order_id, purpose, provider, "
            "capture_method, currency, amount_minor, status) VALUES (%s, 'kathmandu', %s, %s, 'payment', "
            "'sandbox', 'automatic', 'NPR', 57500, 'canceled')",
            (intent, customer, delivered),
        )
        for decision in ("approve", "reject"):  # a reviewer changed their mind: the latest decision counts
            conn.execute(
                "INSERT INTO outbox (event_id, event_type, aggregate_type, aggregate_id, city_id, payload) "
                "VALUES (%s, 'payment.review_decided', 'payment_intent', %s, 'kathmandu', %s)",
                (uuid.uuid4(), intent, json.dumps({"intent_id": str(intent), "decision": decision})),
            )
        delivery = uuid.uuid4()
        conn.execute(
            "INSERT INTO deliveries (id, merchant_order_id, city_id, status, courier_id, pickup_lat, "
            "pickup_lng, dropoff_lat, dropoff_lng, ready_at, mode, distance_m, kg_co2e, baseline_kg_co2e, "
            "created_at) VALUES (%s, %s, 'kathmandu', 'delivered', %s, 27.69, 85.33, 27.70, 85.32, %s, "
            "'bicycle', 2500, 0, 0.45, %s)",
            (delivery, delivered, courier, ready, T0 + timedelta(minutes=3)),
        )
        for status, minutes in (("assigned", 5), ("at_pickup", 15), ("picked_up", 23), ("delivered", 35)):
            conn.execute(
                "INSERT INTO delivery_history (id, delivery_id, city_id, to_status, actor, at) "
                "VALUES (%s, %s, 'kathmandu', %s, 'courier', %s)",
                (uuid.uuid4(), delivery, status, T0 + timedelta(minutes=2 + minutes)),
            )
    return Live(
        str(customer),
        [str(m) for m in merchants],
        str(courier),
        str(delivered),
        str(cancelled),
        str(in_flight),
        str(delivery),
        str(converted),
        str(browsing),
        str(named),
    )


def _cleared_by_review(
    conn: psycopg.Connection[tuple[object, ...]], customer: uuid.UUID, order: uuid.UUID, placed_at: datetime
) -> None:
    """The checkout of ``order`` retried a cart that was held for review and then cleared."""
    assess = (
        "INSERT INTO checkout_fraud_assessments (id, city_id, customer_id, order_id, scorer, score, "
        "decision, outcome, reasons, inputs, fingerprint, fraud_label, reviewed_at, at) "
        "SELECT %s, 'kathmandu', %s, {order}, 'rules', 0.8, 'review', %s, %s, '{{}}', 'cart-fingerprint', "
        "%s, %s, %s"
    )
    held, reviewed_at = uuid.uuid4(), placed_at - timedelta(minutes=10)
    conn.execute(
        assess.format(order="NULL"),
        (
            held,
            customer,
            "held_for_review",
            ["large_amount"],
            False,
            reviewed_at,
            placed_at - timedelta(minutes=20),
        ),
    )
    conn.execute(
        "INSERT INTO outbox (event_id, event_type, aggregate_type, aggregate_id, city_id, payload, "
        "occurred_at) VALUES (%s, 'checkout.reviewed', 'checkout_fraud_assessment', %s, 'kathmandu', %s, %s)",
        (
            uuid.uuid4(),
            held,
            json.dumps({"assessment_id": str(held), "customer_id": str(customer), "fraud": False}),
            reviewed_at,
        ),
    )
    conn.execute(
        assess.format(order="parent_id") + " FROM merchant_orders WHERE id = %s",
        (
            uuid.uuid4(),
            customer,
            "placed",
            ["large_amount", "cleared_by_review"],
            None,
            None,
            placed_at,
            order,
        ),
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, pg_admin_url: str, template_db: str) -> Iterator[Built]:
    from nearx.postgres import drop_database, ensure_database, with_database
    from nearx.settings import load_settings

    name = f"nearx_live_{uuid.uuid4().hex[:10]}"
    ensure_database(pg_admin_url, name, template=template_db)
    url = with_database(pg_admin_url, name)
    live = arrange_live_platform(url)
    settings = load_settings({"NEARX_HOME": str(tmp_path_factory.mktemp("live") / "nearx")})
    defs = build_definitions(settings, database_url=url, seed=SPEC.seed, orders_per_day=SPEC.orders_per_day)
    with dg.DagsterInstance.ephemeral() as instance:
        report = run_pipeline(defs, SPEC, instance)
        yield Built(live, url, defs, instance, lake_path(settings), warehouse_path(settings), report)
    drop_database(pg_admin_url, name)


def test_graph_with_live_data_passes_every_blocking_check(built: Built) -> None:
    assert built.report.failures == []
    assert built.report.failed_checks == []
    for table in ("merchants", "customers", "couriers", "orders", "deliveries", "search_sessions"):
        assert live_path(built.lake, table).exists(), table


def test_served_and_clicked_matches_become_sessions_and_impressions(built: Built) -> None:
    live = built.live
    sessions = built.rows(
        "SELECT session_id, day::VARCHAR, hour, n_shown, converted, order_id, customer_id "
        f"FROM search_sessions WHERE customer_id = '{live.customer}' ORDER BY created_at"
    )
    assert sessions == [
        (live.converted_match, "2026-11-30", 11, 2, True, live.delivered, live.customer),  # by the window
        (live.browsing_match, "2026-11-30", 12, 1, False, None, live.customer),
        (live.named_match, "2026-11-30", 13, 2, False, None, live.customer),  # its order is in flight
    ]
    shown = built.rows(
        "SELECT position, merchant_id, clicked, ordered, prep_estimate_s, price_level "
        f"FROM search_impressions WHERE session_id = '{live.converted_match}' ORDER BY position"
    )
    assert shown == [
        (1, live.merchants[0], False, False, 1200, None),  # served before the payload had what was shown
        (2, live.merchants[1], True, True, 1200, None),
    ]


def test_impressions_keep_what_the_customer_saw(built: Built) -> None:
    shown = built.rows(
        "SELECT merchant_id, distance_m, round(price_level::DOUBLE, 3), rating::DECIMAL(3, 1), "
        "eco_packaging, is_favourite FROM search_impressions "
        f"WHERE session_id = '{built.live.named_match}' ORDER BY position"
    )
    assert shown == [
        (
            built.live.merchants[0],
            850,
            1.412,
            Decimal("4.6"),
            True,
            False,
        ),  # the top quartile, simulator scale
        (built.live.merchants[1], 850, 0.708, None, False, True),
    ]


def test_finished_orders_and_deliveries_are_mapped(built: Built) -> None:
    live = built.live
    orders = built.rows(
        "SELECT order_id, status, cancel_reason, subtotal_minor, total_minor, courier_id, session_id, "
        f"promo_code, is_fraud FROM orders WHERE customer_id = '{live.customer}' ORDER BY created_at"
    )
    assert orders == [
        (
            live.delivered,
            "delivered",
            None,
            56500,
            57500,
            live.courier,
            live.converted_match,
            "WELCOME",
            True,  # the reviewer rejected its payment
        ),
        # its checkout retried a cart a reviewer had held and cleared
        (live.cancelled, "cancelled", "customer_cancelled", 56500, 57500, None, None, "WELCOME", False),
    ]  # the third order is still being prepared: it waits for a later extract
    delivery = built.rows(
        "SELECT mode, prep_s, pickup_travel_s, travel_s, duration_s, declines, co2e_saved_kg, on_time "
        f"FROM deliveries WHERE delivery_id = '{live.delivery}'"
    )
    assert delivery == [("bicycle", 20 * 60.0, 10 * 60.0, 12 * 60.0, 35 * 60.0, 0, 0.45, None)]
    assert built.rows(f"SELECT mode, shift_hours FROM couriers WHERE courier_id = '{live.courier}'") == [
        ("bicycle", None)
    ]
    assert built.rows(f"SELECT lat, lng, city_id FROM customers WHERE customer_id = '{live.customer}'") == [
        (27.70, 85.32, "kathmandu")
    ]


def test_daily_marts_count_live_traffic_beside_simulated_history(built: Built) -> None:
    days = built.rows("SELECT day::VARCHAR, orders, delivered_orders, gmv_minor FROM daily_city ORDER BY day")
    assert [day for day, *_ in days] == ["2026-02-02", "2026-02-03", "2026-11-30"]
    assert days[-1][1:] == (2, 1, 57500)


def test_the_next_training_run_sees_live_rows(built: Built) -> None:
    from models.datasets import eta_rows, fraud_rows, green_rows, ranker_rows

    tables = {
        table: pl.scan_parquet(staging_path(built.lake, table))
        for table in (
            "merchants",
            "customers",
            "orders",
            "deliveries",
            "search_sessions",
            "search_impressions",
        )
    }
    live_orders = [built.live.delivered, built.live.cancelled]
    ranker = ranker_rows(tables).filter(pl.col("session_id") == built.live.converted_match)
    assert ranker.sort("position")["relevance"].to_list() == [0, 2]
    eta = eta_rows(tables).filter(pl.col("order_id") == built.live.delivered)
    assert eta.select("duration_s", "mode", "category").rows() == [(35 * 60.0, "bicycle", "restaurant")]
    assert (
        green_rows(tables).filter(pl.col("order_id") == built.live.delivered).is_empty()
    )  # no promise, no label
    fraud = fraud_rows(tables).filter(pl.col("order_id").is_in(live_orders))
    assert sorted(fraud.select("order_id", "label").rows()) == sorted(
        [(built.live.delivered, 1), (built.live.cancelled, 0)]
    )  # a payment review and a checkout review


def test_offline_features_are_computed_over_live_rows(built: Built, tmp_path: Path) -> None:
    from features.build import feature_table_path, write_feature_tables
    from pipelines.assets.features import lake_tables

    write_feature_tables(lake_tables(built.lake), tmp_path)
    stats = pl.read_parquet(feature_table_path(tmp_path, "merchant_stats"))
    live = stats.filter(pl.col("merchant_id") == built.live.merchants[1]).sort("event_timestamp")
    assert live["merchant_prep_p50_s"][-1] == 20 * 60.0  # the live kitchen's ready_for_pickup


def test_an_order_that_finishes_later_arrives_with_the_next_refresh(built: Built) -> None:
    """Runs last: it changes the shared platform (an in-flight order is delivered)."""
    with psycopg.connect(built.url, autocommit=True) as conn:
        conn.execute(
            "UPDATE merchant_orders SET status = 'delivered', updated_at = %s WHERE id = %s",
            (T0 + timedelta(hours=5), built.live.in_flight),
        )
    report = PipelineReport()
    execute(built.defs, "refresh", built.instance, report)
    assert report.ok, report.failures + report.failed_checks
    assert (
        len(list(extract_dir(built.lake, "merchant_orders").glob("batch-*.parquet"))) == 2
    )  # only the change
    orders = built.rows(f"SELECT order_id, status FROM orders WHERE customer_id = '{built.live.customer}'")
    assert sorted(orders) == sorted(
        [
            (built.live.delivered, "delivered"),
            (built.live.cancelled, "cancelled"),
            (built.live.in_flight, "delivered"),
        ]
    )
    named = built.rows(  # the order names its match: joined to it exactly, though served 2.5 h before
        f"SELECT converted, order_id FROM search_sessions WHERE session_id = '{built.live.named_match}'"
    )
    assert named == [(True, built.live.in_flight)]
    assert built.rows(f"SELECT session_id FROM orders WHERE order_id = '{built.live.in_flight}'") == [
        (built.live.named_match,)
    ]
    shown = built.rows(
        "SELECT position, clicked, ordered FROM search_impressions "
        f"WHERE session_id = '{built.live.named_match}' ORDER BY position"
    )
    assert shown == [(1, True, True), (2, False, False)]  # ordered from it, so it was chosen
