"""SQL of the sandbox provider's own books (its side of each charge and refund)."""

from __future__ import annotations

import uuid
from typing import Any

from nearx.db import Connection
from nearx.money import Money


async def charge(conn: Connection, intent_id: uuid.UUID) -> dict[str, Any] | None:
    return await (
        await conn.execute("SELECT * FROM sandbox_gateway_charges WHERE intent_id = %s", (intent_id,))
    ).fetchone()


async def charge_by_ref(conn: Connection, provider_ref: str) -> dict[str, Any] | None:
    return await (
        await conn.execute("SELECT * FROM sandbox_gateway_charges WHERE provider_ref = %s", (provider_ref,))
    ).fetchone()


async def save_charge(
    conn: Connection,
    intent_id: uuid.UUID,
    provider_ref: str,
    amount: Money,
    state: str,
    captured_minor: int,
    decline_code: str | None = None,
) -> None:
    await conn.execute(
        """
        INSERT INTO sandbox_gateway_charges
            (intent_id, provider_ref, amount_minor, currency, state, captured_minor, decline_code)
        VALUES (%s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (intent_id) DO UPDATE SET state = EXCLUDED.state,
            captured_minor = EXCLUDED.captured_minor,
            decline_code = EXCLUDED.decline_code, amount_minor = EXCLUDED.amount_minor
        """,
        (intent_id, provider_ref, amount.amount_minor, amount.currency, state, captured_minor, decline_code),
    )


async def set_state(conn: Connection, provider_ref: str, state: str, captured_minor: int) -> dict[str, Any]:
    row = await (
        await conn.execute(
            "UPDATE sandbox_gateway_charges SET state = %s, captured_minor = %s WHERE provider_ref = %s "
            "RETURNING *",
            (state, captured_minor, provider_ref),
        )
    ).fetchone()
    assert row is not None
    return row


async def refund(conn: Connection, refund_key: str) -> dict[str, Any] | None:
    return await (
        await conn.execute("SELECT * FROM sandbox_gateway_refunds WHERE refund_key = %s", (refund_key,))
    ).fetchone()


async def save_refund(conn: Connection, refund_key: str, provider_ref: str, amount_minor: int) -> None:
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO sandbox_gateway_refunds (refund_key, provider_ref, amount_minor) "
            "VALUES (%s, %s, %s)",
            (refund_key, provider_ref, amount_minor),
        )
        await conn.execute(
            "UPDATE sandbox_gateway_charges SET refunded_minor = refunded_minor + %s WHERE provider_ref = %s",
            (amount_minor, provider_ref),
        )
