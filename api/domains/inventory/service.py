"""Stock rules: reserve at checkout, commit on acceptance, release on cancel or expiry.

Stock never goes negative: availability is checked inside the UPDATE that
changes it (``on_hand - reserved >= qty``), rows are always touched in variant
id order (so concurrent multi-item checkouts cannot deadlock), and CHECK
constraints in the table refuse anything that slipped past.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from api.domains.inventory import repository as repo
from api.errors import Conflict
from nearx.db import Connection


async def reserve(
    conn: Connection, *, order_id: uuid.UUID, lines: Sequence[tuple[uuid.UUID, int]], expires_at: datetime
) -> None:
    """Reserve every (variant, quantity) line for ``order_id`` or raise 409 (the caller rolls back)."""
    totals: Counter[uuid.UUID] = Counter()
    for variant_id, quantity in lines:
        totals[variant_id] += quantity
    for variant_id in sorted(totals):
        quantity = totals[variant_id]
        held = await repo.try_reserve(conn, variant_id, quantity)
        if held is None:
            raise Conflict(f"not enough stock for variant {variant_id}", variant_id=str(variant_id))
        await repo.insert_reservation(
            conn,
            variant_id=variant_id,
            merchant_id=held["merchant_id"],
            city_id=held["city_id"],
            order_id=order_id,
            quantity=quantity,
            expires_at=expires_at,
        )


async def commit(conn: Connection, order_id: uuid.UUID) -> int:
    """The order was accepted: its reserved units leave stock. Returns how many lines moved."""
    moved = await repo.settle_order_reservations(conn, order_id, "committed")
    for row in sorted(moved, key=lambda r: r["variant_id"]):
        await repo.consume(conn, row["variant_id"], row["quantity"])
    return len(moved)


async def release(conn: Connection, order_id: uuid.UUID) -> int:
    """The order ended before acceptance: its held units are free again."""
    moved = await repo.settle_order_reservations(conn, order_id, "released")
    for row in sorted(moved, key=lambda r: r["variant_id"]):
        await repo.unreserve(conn, row["variant_id"], row["quantity"])
    return len(moved)


async def release_expired(
    conn: Connection, now: datetime, variant_ids: Sequence[uuid.UUID] | None = None
) -> int:
    """Free reservations whose time ran out; run by the sweep job and lazily at checkout."""
    moved = await repo.settle_expired(conn, now, variant_ids)
    for row in sorted(moved, key=lambda r: r["variant_id"]):
        await repo.unreserve(conn, row["variant_id"], row["quantity"])
    return len(moved)
