"""All SQL of wallets (the money itself is in the ledger)."""

from __future__ import annotations

import uuid
from typing import Any

from nearx.db import Connection


async def ensure_wallet(
    conn: Connection, user_id: uuid.UUID, currency: str, *, lock: bool = False
) -> dict[str, Any]:
    await conn.execute(
        "INSERT INTO wallets (user_id, currency) VALUES (%s, %s) ON CONFLICT DO NOTHING", (user_id, currency)
    )
    sql = "SELECT * FROM wallets WHERE user_id = %s AND currency = %s" + (" FOR UPDATE" if lock else "")
    row = await (await conn.execute(sql, (user_id, currency))).fetchone()
    assert row is not None
    return row


async def set_tier(conn: Connection, user_id: uuid.UUID, currency: str, tier: int) -> None:
    await conn.execute(
        "INSERT INTO wallets (user_id, currency, kyc_tier) VALUES (%s, %s, %s) "
        "ON CONFLICT (user_id, currency) DO UPDATE SET kyc_tier = EXCLUDED.kyc_tier",
        (user_id, currency, tier),
    )


async def pending_top_ups(conn: Connection, user_id: uuid.UUID, currency: str) -> int:
    """Top-ups confirmed but not yet captured: they count against the balance limit."""
    row = await (
        await conn.execute(
            "SELECT COALESCE(sum(amount_minor), 0) AS total FROM payment_intents WHERE customer_id = %s "
            "AND currency = %s AND purpose = 'topup' AND status IN ('processing', 'requires_action')",
            (user_id, currency),
        )
    ).fetchone()
    assert row is not None
    return int(row["total"])


async def currencies_of(conn: Connection, user_id: uuid.UUID) -> list[str]:
    """The currencies the user holds a wallet in (data export)."""
    cursor = await conn.execute(
        "SELECT currency FROM wallets WHERE user_id = %s ORDER BY currency", (user_id,)
    )
    return [str(row["currency"]).strip() for row in await cursor.fetchall()]
