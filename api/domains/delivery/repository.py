"""All SQL of the delivery context: deliveries, their transitions and the offers made to couriers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from nearx.db import Connection

Row = dict[str, Any]

_DELIVERY_COLUMNS = """id, merchant_order_id, city_id, status, courier_id, emergency, pickup_lat, pickup_lng,
    dropoff_lat, dropoff_lng, ready_at, size, declines, assigned_from_lat, assigned_from_lng, mode,
    distance_m, kg_co2e, baseline_kg_co2e, proof_required, proof_failures, proof, frozen_by, eta_at,
    eta_updated_at, target_best_m, deviation_fixes, coverage_policy_id, insured_value_minor, insured_currency,
    created_at, updated_at"""
_OFFER_COLUMNS = """id, delivery_id, courier_id, city_id, round_id, bundle_id, status, cost_s, dropoff_eta_s,
    offered_at, expires_at, responded_at, reason"""


async def city(conn: Connection, city_id: str) -> Row | None:
    cur = await conn.execute("SELECT id, country, timezone FROM cities WHERE id = %s", (city_id,))
    row = await cur.fetchone()
    return dict(row) if row else None


async def orders_needing_delivery(conn: Connection, city_id: str, now: datetime) -> list[Row]:
    """Merchant orders being prepared (or ready) without a delivery yet, with pickup, drop-off, ready time.

    Pickup is the merchant, drop-off the customer's address; the order is expected
    ready after the merchant's preparation time (now, once marked ready).
    """
    cur = await conn.execute(
        """
        SELECT mo.id AS merchant_order_id, mo.city_id, mo.emergency, m.lat AS pickup_lat, m.lng AS pickup_lng,
               o.delivery_lat AS dropoff_lat, o.delivery_lng AS dropoff_lng,
               coalesce(r.proof, 'location') AS proof_required,
               ip.policy_id AS coverage_policy_id,
               CASE WHEN ip.policy_id IS NOT NULL THEN least(mo.items_minor, ip.per_delivery_limit_minor) END
                 AS insured_value_minor,
               CASE WHEN ip.policy_id IS NOT NULL THEN mo.currency END AS insured_currency,
               CASE WHEN mo.status = 'ready_for_pickup' THEN %(now)s
                    ELSE greatest(%(now)s, mo.updated_at + make_interval(mins => m.prep_time_min)) END
                 AS ready_at
        FROM merchant_orders mo
        JOIN merchants m ON m.id = mo.merchant_id
        JOIN orders o ON o.id = mo.parent_id
        LEFT JOIN delivery_proof_rules r ON r.category = m.category
        LEFT JOIN insurance_policies ip ON ip.city_id = mo.city_id AND ip.currency = mo.currency
        WHERE mo.city_id = %(city)s AND mo.status IN ('accepted', 'preparing', 'ready_for_pickup')
          AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.merchant_order_id = mo.id)
        ORDER BY mo.id
        FOR UPDATE OF mo SKIP LOCKED
        """,
        {"now": now, "city": city_id},
    )
    return [dict(row) for row in await cur.fetchall()]


async def insert_delivery(conn: Connection, row: Row) -> Row:
    cur = await conn.execute(
        f"""
        INSERT INTO deliveries (id, merchant_order_id, city_id, emergency, pickup_lat, pickup_lng,
                                dropoff_lat, dropoff_lng, ready_at, proof_required, coverage_policy_id,
                                insured_value_minor, insured_currency)
        VALUES (%(id)s, %(merchant_order_id)s, %(city_id)s, %(emergency)s, %(pickup_lat)s, %(pickup_lng)s,
                %(dropoff_lat)s, %(dropoff_lng)s, %(ready_at)s, %(proof_required)s, %(coverage_policy_id)s,
                %(insured_value_minor)s, %(insured_currency)s)
        RETURNING {_DELIVERY_COLUMNS}
        """,
        row,
    )
    created = await cur.fetchone()
    assert created is not None
    return dict(created)


async def delivery(conn: Connection, delivery_id: uuid.UUID, *, lock: bool = False) -> Row | None:
    cur = await conn.execute(
        f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE id = %s" + (" FOR UPDATE" if lock else ""),
        (delivery_id,),
    )
    row = await cur.fetchone()
    return dict(row) if row else None


async def pending_deliveries(conn: Connection, city_id: str) -> list[Row]:
    """The demand of a round; rows another round is working on are skipped, not waited for."""
    cur = await conn.execute(
        f"""
        SELECT {_DELIVERY_COLUMNS} FROM deliveries
        WHERE city_id = %s AND status = 'pending'
        ORDER BY emergency DESC, ready_at, id
        FOR UPDATE SKIP LOCKED
        """,
        (city_id,),
    )
    return [dict(row) for row in await cur.fetchall()]


async def free_couriers(conn: Connection, city_id: str) -> list[Row]:
    """Online couriers with a position, no delivery in hand and no offer waiting for them."""
    cur = await conn.execute(
        """
        SELECT c.id, c.user_id, c.mode, c.bag_slots, c.idle_since, p.lat, p.lng
        FROM couriers c JOIN courier_positions p ON p.courier_id = c.id
        WHERE c.city_id = %s AND c.status = 'approved' AND c.shift = 'online'
          AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.courier_id = c.id
                          AND d.status IN ('assigned', 'at_pickup', 'picked_up'))
          AND NOT EXISTS (SELECT 1 FROM delivery_offers f WHERE f.courier_id = c.id AND f.status = 'pending')
        ORDER BY c.id
        FOR UPDATE OF c SKIP LOCKED
        """,
        (city_id,),
    )
    return [dict(row) for row in await cur.fetchall()]


async def refused_pairs(conn: Connection, delivery_ids: list[uuid.UUID]) -> list[Row]:
    cur = await conn.execute(
        "SELECT delivery_id, courier_id FROM delivery_offers "
        "WHERE delivery_id = ANY(%s) AND status IN ('declined', 'expired', 'withdrawn')",
        (delivery_ids,),
    )
    return [dict(row) for row in await cur.fetchall()]


async def allowed(conn: Connection, from_status: str, to_status: str, actor: str) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM delivery_transitions WHERE from_status = %s AND to_status = %s AND actor = %s",
        (from_status, to_status, actor),
    )
    return await cur.fetchone() is not None


async def update_delivery(conn: Connection, delivery_id: uuid.UUID, changes: Row, now: datetime) -> Row:
    assignments = ", ".join(f"{column} = %({column})s" for column in changes)
    cur = await conn.execute(
        f"UPDATE deliveries SET {assignments}, updated_at = %(now)s WHERE id = %(id)s "
        f"RETURNING {_DELIVERY_COLUMNS}",
        {**changes, "now": now, "id": delivery_id},
    )
    row = await cur.fetchone()
    assert row is not None
    return dict(row)


async def add_decline(conn: Connection, delivery_id: uuid.UUID) -> None:
    await conn.execute("UPDATE deliveries SET declines = declines + 1 WHERE id = %s", (delivery_id,))


async def record_transition(conn: Connection, row: Row) -> None:
    await conn.execute(
        """
        INSERT INTO delivery_history
            (id, delivery_id, city_id, from_status, to_status, actor, actor_id, reason, at)
        VALUES (%(id)s, %(delivery_id)s, %(city_id)s, %(from_status)s, %(to_status)s, %(actor)s,
                %(actor_id)s, %(reason)s, %(at)s)
        """,
        row,
    )


async def history(conn: Connection, delivery_id: uuid.UUID) -> list[Row]:
    cur = await conn.execute(
        "SELECT from_status, to_status, actor, actor_id, reason, at FROM delivery_history "
        "WHERE delivery_id = %s ORDER BY at, id",
        (delivery_id,),
    )
    return [dict(row) for row in await cur.fetchall()]


async def insert_offer(conn: Connection, row: Row) -> None:
    await conn.execute(
        """
        INSERT INTO delivery_offers (id, delivery_id, courier_id, city_id, round_id, bundle_id, cost_s,
                                     dropoff_eta_s, offered_at, expires_at)
        VALUES (%(id)s, %(delivery_id)s, %(courier_id)s, %(city_id)s, %(round_id)s, %(bundle_id)s,
                %(cost_s)s, %(dropoff_eta_s)s, %(offered_at)s, %(expires_at)s)
        """,
        row,
    )


async def offer(conn: Connection, offer_id: uuid.UUID, *, lock: bool = False) -> Row | None:
    cur = await conn.execute(
        f"SELECT {_OFFER_COLUMNS} FROM delivery_offers WHERE id = %s" + (" FOR UPDATE" if lock else ""),
        (offer_id,),
    )
    row = await cur.fetchone()
    return dict(row) if row else None


async def close_offer(
    conn: Connection, offer_id: uuid.UUID, status: str, reason: str | None, now: datetime
) -> None:
    await conn.execute(
        "UPDATE delivery_offers SET status = %s, reason = %s, responded_at = %s WHERE id = %s",
        (status, reason, now, offer_id),
    )


async def expired_offers(conn: Connection, city_id: str, now: datetime) -> list[Row]:
    cur = await conn.execute(
        f"""
        SELECT {_OFFER_COLUMNS} FROM delivery_offers
        WHERE city_id = %s AND status = 'pending' AND expires_at <= %s
        ORDER BY id FOR UPDATE SKIP LOCKED
        """,
        (city_id, now),
    )
    return [dict(row) for row in await cur.fetchall()]


async def offers_of(conn: Connection, courier_id: uuid.UUID, status: str) -> list[Row]:
    cur = await conn.execute(
        f"SELECT {_OFFER_COLUMNS} FROM delivery_offers WHERE courier_id = %s AND status = %s "
        "ORDER BY offered_at, id",
        (courier_id, status),
    )
    return [dict(row) for row in await cur.fetchall()]


async def refusals_since(conn: Connection, courier_id: uuid.UUID, since: datetime) -> int:
    cur = await conn.execute(
        "SELECT count(*) AS n FROM delivery_offers "
        "WHERE courier_id = %s AND status IN ('declined', 'expired') AND offered_at >= %s",
        (courier_id, since),
    )
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def courier_of_user(conn: Connection, user_id: uuid.UUID) -> Row | None:
    cur = await conn.execute("SELECT id, city_id, mode FROM couriers WHERE user_id = %s", (user_id,))
    row = await cur.fetchone()
    return dict(row) if row else None


async def courier_position(conn: Connection, courier_id: uuid.UUID) -> Row | None:
    cur = await conn.execute("SELECT lat, lng FROM courier_positions WHERE courier_id = %s", (courier_id,))
    row = await cur.fetchone()
    return dict(row) if row else None


async def restart_idle_clock(conn: Connection, courier_id: uuid.UUID, now: datetime) -> None:
    await conn.execute(
        "UPDATE couriers SET idle_since = %s WHERE id = %s AND shift = 'online'", (now, courier_id)
    )


async def work_of(conn: Connection, courier_id: uuid.UUID, statuses: tuple[str, ...]) -> list[Row]:
    cur = await conn.execute(
        f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE courier_id = %s AND status = ANY(%s) "
        "ORDER BY id FOR UPDATE",
        (courier_id, list(statuses)),
    )
    return [dict(row) for row in await cur.fetchall()]


async def accepted_offer(conn: Connection, delivery_id: uuid.UUID, courier_id: uuid.UUID) -> Row | None:
    cur = await conn.execute(
        f"SELECT {_OFFER_COLUMNS} FROM delivery_offers "
        "WHERE delivery_id = %s AND courier_id = %s AND status = 'accepted'",
        (delivery_id, courier_id),
    )
    row = await cur.fetchone()
    return dict(row) if row else None


async def stalled(conn: Connection, city_id: str, cutoff: datetime) -> list[Row]:
    """Deliveries not yet picked up whose courier has neither moved nor progressed since ``cutoff``."""
    cur = await conn.execute(
        f"""
        SELECT {", ".join("d." + c.strip() for c in _DELIVERY_COLUMNS.split(","))}
        FROM deliveries d LEFT JOIN courier_positions p ON p.courier_id = d.courier_id
        WHERE d.city_id = %s AND d.status IN ('assigned', 'at_pickup') AND d.updated_at < %s
          AND d.frozen_by IS NULL
          AND (p.fixed_at IS NULL OR p.fixed_at < %s)
        ORDER BY d.id
        FOR UPDATE OF d SKIP LOCKED
        """,
        (city_id, cutoff, cutoff),
    )
    return [dict(row) for row in await cur.fetchall()]


async def customer_of(conn: Connection, delivery_id: uuid.UUID) -> uuid.UUID | None:
    cur = await conn.execute(
        "SELECT mo.customer_id FROM deliveries d JOIN merchant_orders mo ON mo.id = d.merchant_order_id "
        "WHERE d.id = %s",
        (delivery_id,),
    )
    row = await cur.fetchone()
    return row["customer_id"] if row else None


async def add_proof_failure(conn: Connection, delivery_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE deliveries SET proof_failures = proof_failures + 1 WHERE id = %s", (delivery_id,)
    )


_SOS_COLUMNS = """id, city_id, raised_by, raised_as, courier_id, delivery_id, lat, lng, note, status,
    raised_at, resolved_at, resolved_by, resolution"""


async def insert_sos(conn: Connection, row: Row) -> None:
    await conn.execute(
        """
        INSERT INTO sos_incidents (id, city_id, raised_by, raised_as, courier_id, delivery_id, lat, lng, note,
                                   raised_at)
        VALUES (%(id)s, %(city_id)s, %(raised_by)s, %(raised_as)s, %(courier_id)s, %(delivery_id)s, %(lat)s,
                %(lng)s, %(note)s, %(raised_at)s)
        """,
        row,
    )


async def freeze(conn: Connection, courier_id: uuid.UUID, incident_id: uuid.UUID) -> list[uuid.UUID]:
    cur = await conn.execute(
        "UPDATE deliveries SET frozen_by = %s WHERE courier_id = %s "
        "AND status IN ('assigned', 'at_pickup', 'picked_up') AND frozen_by IS NULL RETURNING id",
        (incident_id, courier_id),
    )
    return [row["id"] for row in await cur.fetchall()]


async def freeze_delivery(
    conn: Connection, delivery_id: uuid.UUID, incident_id: uuid.UUID
) -> list[uuid.UUID]:
    """A customer's SOS freezes their one delivery while it is under way (not before, not after)."""
    cur = await conn.execute(
        "UPDATE deliveries SET frozen_by = %s WHERE id = %s "
        "AND status IN ('assigned', 'at_pickup', 'picked_up') AND frozen_by IS NULL RETURNING id",
        (incident_id, delivery_id),
    )
    return [row["id"] for row in await cur.fetchall()]


async def sos(conn: Connection, incident_id: uuid.UUID, *, lock: bool = False) -> Row | None:
    cur = await conn.execute(
        f"SELECT {_SOS_COLUMNS} FROM sos_incidents WHERE id = %s" + (" FOR UPDATE" if lock else ""),
        (incident_id,),
    )
    row = await cur.fetchone()
    return dict(row) if row else None


async def open_sos(conn: Connection) -> list[Row]:
    cur = await conn.execute(
        f"SELECT {_SOS_COLUMNS} FROM sos_incidents WHERE status = 'open' ORDER BY raised_at, id"
    )
    return [dict(row) for row in await cur.fetchall()]


async def resolve_sos(
    conn: Connection, incident_id: uuid.UUID, by: uuid.UUID, resolution: str, now: datetime
) -> Row:
    cur = await conn.execute(
        "UPDATE sos_incidents SET status = 'resolved', resolved_at = %s, resolved_by = %s, resolution = %s "
        f"WHERE id = %s RETURNING {_SOS_COLUMNS}",
        (now, by, resolution, incident_id),
    )
    row = await cur.fetchone()
    assert row is not None
    await conn.execute("UPDATE deliveries SET frozen_by = NULL WHERE frozen_by = %s", (incident_id,))
    return dict(row)


async def event_stream_tail(conn: Connection) -> int:
    """The newest position of the PostgreSQL event stream: live tracking follows it from here."""
    cur = await conn.execute("SELECT coalesce(max(seq), 0) AS seq FROM event_stream")
    row = await cur.fetchone()
    return int(row["seq"]) if row else 0


async def customer_delivery(conn: Connection, delivery_id: uuid.UUID) -> Row | None:
    """A delivery with its customer and, while a courier holds it, their mode and latest position."""
    cur = await conn.execute(
        """
        SELECT d.id, d.status, d.emergency, d.eta_at, d.updated_at, mo.customer_id, c.mode AS courier_mode,
               p.lat AS courier_lat, p.lng AS courier_lng, p.fixed_at AS courier_fixed_at
        FROM deliveries d
        JOIN merchant_orders mo ON mo.id = d.merchant_order_id
        LEFT JOIN couriers c ON c.id = d.courier_id
        LEFT JOIN courier_positions p ON p.courier_id = d.courier_id
        WHERE d.id = %s
        """,
        (delivery_id,),
    )
    row = await cur.fetchone()
    return dict(row) if row else None


async def tracked_deliveries(conn: Connection, courier_id: uuid.UUID) -> list[Row]:
    """The deliveries a courier holds now (their customers follow the courier's position); one a
    concurrent request is moving is skipped this time rather than waited for."""
    cur = await conn.execute(
        f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE courier_id = %s "
        "AND status IN ('assigned', 'at_pickup', 'picked_up') ORDER BY id FOR UPDATE SKIP LOCKED",
        (courier_id,),
    )
    return [dict(row) for row in await cur.fetchall()]


async def notify_position(conn: Connection, channel: str, payload: str) -> None:
    """NOTIFY on commit: every API worker's live feed hears it."""
    await conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))


async def cities_with_open_work(conn: Connection) -> list[str]:
    """Cities where a round has something to do: orders to open, deliveries to offer or watch."""
    cur = await conn.execute(
        """
        SELECT c.id FROM cities c
        WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.city_id = c.id
                      AND d.status IN ('pending', 'offered', 'assigned', 'at_pickup'))
           OR EXISTS (SELECT 1 FROM merchant_orders mo WHERE mo.city_id = c.id
                      AND mo.status IN ('accepted', 'preparing', 'ready_for_pickup')
                      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.merchant_order_id = mo.id))
        ORDER BY c.id
        """
    )
    return [row["id"] for row in await cur.fetchall()]


async def try_dispatch_lock(conn: Connection, city_id: str) -> bool:
    """One round per city at a time across processes (held until the transaction ends)."""
    cur = await conn.execute(
        "SELECT pg_try_advisory_xact_lock(hashtext('nearx.dispatch:' || %s)) AS ok", (city_id,)
    )
    row = await cur.fetchone()
    return bool(row and row["ok"])


_PROBLEM_COLUMNS = """id, delivery_id, city_id, courier_id, kind, reported_by, status_at, note, rerouted,
    status, reported_at, resolved_at"""


async def insert_problem(conn: Connection, row: Row) -> Row:
    cur = await conn.execute(
        f"""
        INSERT INTO delivery_problems (id, delivery_id, city_id, courier_id, kind, reported_by, status_at,
                                       note, rerouted, reported_at)
        VALUES (%(id)s, %(delivery_id)s, %(city_id)s, %(courier_id)s, %(kind)s, %(reported_by)s,
                %(status_at)s, %(note)s, %(rerouted)s, %(reported_at)s)
        RETURNING {_PROBLEM_COLUMNS}
        """,
        row,
    )
    created = await cur.fetchone()
    assert created is not None
    return dict(created)


async def open_problems(conn: Connection) -> list[Row]:
    cur = await conn.execute(
        f"SELECT {_PROBLEM_COLUMNS} FROM delivery_problems WHERE status = 'open' ORDER BY reported_at, id"
    )
    return [dict(row) for row in await cur.fetchall()]


async def resolve_problem(conn: Connection, problem_id: uuid.UUID, now: datetime) -> Row | None:
    """Close an open problem; ``None`` when there is no open problem with that id."""
    cur = await conn.execute(
        f"UPDATE delivery_problems SET status = 'resolved', resolved_at = %s "
        f"WHERE id = %s AND status = 'open' RETURNING {_PROBLEM_COLUMNS}",
        (now, problem_id),
    )
    row = await cur.fetchone()
    return dict(row) if row else None


async def set_deviation(conn: Connection, delivery_id: uuid.UUID, best_m: float, fixes: int) -> None:
    """Deviation bookkeeping only: it does not count as progress (``updated_at`` stays)."""
    await conn.execute(
        "UPDATE deliveries SET target_best_m = %s, deviation_fixes = %s WHERE id = %s",
        (best_m, fixes, delivery_id),
    )


async def silent_with_goods(conn: Connection, city_id: str, cutoff: datetime) -> list[Row]:
    """Picked-up deliveries whose courier has sent no position and made no move since ``cutoff``,
    not yet flagged to support."""
    cur = await conn.execute(
        f"""
        SELECT {", ".join("d." + c.strip() for c in _DELIVERY_COLUMNS.split(","))}
        FROM deliveries d LEFT JOIN courier_positions p ON p.courier_id = d.courier_id
        WHERE d.city_id = %s AND d.status = 'picked_up' AND d.updated_at < %s
          AND (p.fixed_at IS NULL OR p.fixed_at < %s)
          AND NOT EXISTS (SELECT 1 FROM delivery_problems x WHERE x.delivery_id = d.id
                          AND x.kind = 'courier_silent' AND x.status = 'open')
        ORDER BY d.id
        FOR UPDATE OF d SKIP LOCKED
        """,
        (city_id, cutoff, cutoff),
    )
    return [dict(row) for row in await cur.fetchall()]


# --- data rights (the profiles context's export and erasure) ---------------------------------


async def deliveries_of_courier(conn: Connection, courier_id: uuid.UUID) -> list[Row]:
    """The courier's deliveries without the customers' drop-off points and proofs: those are the
    customers' data, not the courier's."""
    cur = await conn.execute(
        """
        SELECT id, merchant_order_id, city_id, status, emergency, pickup_lat, pickup_lng, ready_at,
               assigned_from_lat, assigned_from_lng, mode, distance_m, kg_co2e, baseline_kg_co2e,
               created_at, updated_at
        FROM deliveries WHERE courier_id = %s ORDER BY created_at, id
        """,
        (courier_id,),
    )
    return [dict(row) for row in await cur.fetchall()]


async def coarsen_customer_points(conn: Connection, customer_id: uuid.UUID) -> int:
    """Round the drop-off points (and the proof's position) of the customer's deliveries to 2
    decimals, about 1 km; the deliveries, their distances and emissions stay for the books."""
    cur = await conn.execute(
        """
        UPDATE deliveries d
        SET dropoff_lat = round(d.dropoff_lat::numeric, 2), dropoff_lng = round(d.dropoff_lng::numeric, 2),
            proof = CASE WHEN d.proof ? 'lat' THEN d.proof || jsonb_build_object(
                        'lat', round((d.proof ->> 'lat')::numeric, 2),
                        'lng', round((d.proof ->> 'lng')::numeric, 2)) ELSE d.proof END
        FROM merchant_orders mo
        WHERE mo.id = d.merchant_order_id AND mo.customer_id = %s
        """,
        (customer_id,),
    )
    return cur.rowcount


async def coarsen_courier_points(conn: Connection, courier_id: uuid.UUID) -> int:
    """Round where the courier was when accepting each delivery to 2 decimals (about 1 km)."""
    cur = await conn.execute(
        "UPDATE deliveries SET assigned_from_lat = round(assigned_from_lat::numeric, 2), "
        "assigned_from_lng = round(assigned_from_lng::numeric, 2) "
        "WHERE courier_id = %s AND assigned_from_lat IS NOT NULL",
        (courier_id,),
    )
    return cur.rowcount


_CLAIM_COLUMNS = """id, delivery_id, city_id, incident_id, policy_id, claimed_minor, currency, reason, status,
    insurer_reference, created_at, filed_at"""


async def covered_frozen_by(conn: Connection, incident_id: uuid.UUID) -> list[Row]:
    """The deliveries an incident froze that travel under a cover (each may be claimed)."""
    cur = await conn.execute(
        "SELECT id, city_id, coverage_policy_id, insured_value_minor, insured_currency FROM deliveries "
        "WHERE frozen_by = %s AND coverage_policy_id IS NOT NULL ORDER BY id",
        (incident_id,),
    )
    return [dict(row) for row in await cur.fetchall()]


async def insert_claim(conn: Connection, row: Row) -> None:
    await conn.execute(
        """
        INSERT INTO insurance_claims (id, delivery_id, city_id, incident_id, policy_id, claimed_minor,
                                      currency, reason, created_at)
        VALUES (%(id)s, %(delivery_id)s, %(city_id)s, %(incident_id)s, %(policy_id)s, %(claimed_minor)s,
                %(currency)s, %(reason)s, %(created_at)s)
        ON CONFLICT (incident_id, delivery_id) DO NOTHING
        """,
        row,
    )


async def pending_claims(conn: Connection, incident_id: uuid.UUID) -> list[Row]:
    cur = await conn.execute(
        f"SELECT {_CLAIM_COLUMNS} FROM insurance_claims WHERE incident_id = %s AND status = 'pending' "
        "ORDER BY id FOR UPDATE",
        (incident_id,),
    )
    return [dict(row) for row in await cur.fetchall()]


async def mark_claim_filed(conn: Connection, claim_id: uuid.UUID, reference: str, now: datetime) -> None:
    await conn.execute(
        "UPDATE insurance_claims SET status = 'filed', insurer_reference = %s, filed_at = %s WHERE id = %s",
        (reference, now, claim_id),
    )


async def claims(conn: Connection, status: str | None) -> list[Row]:
    cur = await conn.execute(
        f"SELECT {_CLAIM_COLUMNS} FROM insurance_claims "
        "WHERE (%(status)s::text IS NULL OR status = %(status)s) ORDER BY created_at, id",
        {"status": status},
    )
    return [dict(row) for row in await cur.fetchall()]
