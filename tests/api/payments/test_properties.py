"""Property tests: random concurrent sequences of money operations never break the books.

Each example runs several workers at once (asyncio tasks, each with its own
PostgreSQL connection) over shared customers and intents: card and wallet
payments, partial captures, partial refunds (borne by anyone, with reused
idempotency keys), confirmations and top-ups under reused idempotency keys,
voids, credits, payout runs with disputes opening and releasing holds, and
reconciliation, including the sandbox's magic timeouts. Afterwards reconciliation settles what timed out
and the invariants are checked against the database.

The database is shared by all examples of a run (the invariants are global and
cumulative), so the fixture is function-scoped on purpose.
``NEARX_PAYMENTS_EXAMPLES`` raises the example count for a deep run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.rows import dict_row

from api.domains.payments import disputes, payouts, service
from api.domains.payments.gateways.registry import default_gateways
from api.domains.payments.idempotent import run_once
from api.domains.payments.schemas import IntentOut, RefundOut
from api.domains.payments.settlement import OrderSplit, order_legs
from api.domains.wallet import service as wallet
from api.errors import DomainError
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.money import Money
from tests.api.payments.helpers import assert_ledger_invariants

EXAMPLES = int(os.environ.get("NEARX_PAYMENTS_EXAMPLES", "25"))
WORKERS = 4
CURRENCY = "NPR"

amounts = st.one_of(st.integers(1, 30_000), st.sampled_from([1_408, 10_000, 2_408]))
cards = st.sampled_from(
    [
        "pm_card_visa",
        "pm_card_visa",
        "4000000000000002",
        "pm_card_timeout",
        "pm_card_timeoutDeclined",
        "pm_card_threeDSecureRequired",
    ]
)
capture_methods = st.sampled_from(["manual", "automatic"])
customer = st.integers(0, 2)
intent_ref = st.integers(0, 1_000)
percent = st.integers(1, 110)
bearers = st.sampled_from(["proportional", "merchant", "platform"])
operation = st.one_of(
    st.tuples(st.just("topup"), customer, amounts, cards),
    st.tuples(st.just("pay_card"), customer, amounts, cards, capture_methods),
    st.tuples(st.just("pay_wallet"), customer, amounts, capture_methods),
    st.tuples(st.just("pay_split"), customer, amounts),
    st.tuples(st.just("capture"), intent_ref, percent),
    st.tuples(st.just("capture"), intent_ref, percent),
    st.tuples(st.just("refund"), intent_ref, percent, bearers, st.integers(0, 2)),
    st.tuples(st.just("refund"), intent_ref, percent, bearers, st.integers(0, 2)),
    st.tuples(st.just("refund"), intent_ref, percent, bearers, st.integers(0, 2)),
    st.tuples(st.just("refund_amount"), intent_ref, amounts, bearers, st.integers(0, 2)),
    st.tuples(st.just("cancel"), intent_ref),
    st.tuples(st.just("credit"), customer, amounts, st.integers(0, 2)),
    st.tuples(st.just("reconcile")),
    st.tuples(st.just("topup_keyed"), customer, amounts, st.integers(0, 2)),
    st.tuples(st.just("confirm_keyed"), intent_ref, st.integers(0, 2)),
    st.tuples(st.just("payout"), st.integers(0, 3)),
    st.tuples(st.just("dispute"), st.integers(0, 2)),
    st.tuples(st.just("resolve")),
)
KEYED_CARD = "4242424242424242"
"""The sandbox's approving test card, used only by keyed top-ups so the check can find them."""
PAYOUT_MINIMUMS = (0, 100, 5_000, 50_000)
programs = st.lists(st.lists(operation, min_size=4, max_size=25), min_size=WORKERS, max_size=WORKERS)


async def _connect(url: str) -> Connection:
    return await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row)


class World:
    """What the workers share: the customers of this example and every intent created so far."""

    def __init__(self) -> None:
        self.customers = [uuid.uuid4() for _ in range(3)]
        self.merchants = [uuid.uuid4() for _ in range(3)]
        self.intents: list[uuid.UUID] = []
        self.captured: list[uuid.UUID] = []
        self.disputes: list[uuid.UUID] = []
        self.replies: dict[tuple[str, str], list[Any]] = defaultdict(list)
        """Every response returned for one (scope, idempotency key): replays must all be equal."""

    def intent(self, ref: int, *, captured: bool = False) -> uuid.UUID | None:
        """Mostly one of the latest (captured) intents, so operations find something to act on."""
        pool = self.captured if captured else self.intents
        if not pool:
            return None
        window = len(pool) if ref % 5 == 0 else min(len(pool), 3)
        return pool[-1 - ref % window]

    def note(self, row: dict[str, Any]) -> None:
        if row["status"] == "succeeded" and row["purpose"] != "topup":
            self.captured.append(row["id"])


async def _step(conn: Connection, world: World, op: tuple[Any, ...]) -> None:
    gateways = default_gateways(conn)
    kind = op[0]
    if kind == "topup":
        row = await wallet.top_up(
            conn, gateways, world.customers[op[1]], Money(op[2], CURRENCY), payment_method=op[3]
        )
        world.intents.append(row["id"])
    elif kind in ("pay_card", "pay_wallet"):
        provider = "sandbox" if kind == "pay_card" else "wallet"
        created = await service.create_intent(
            conn,
            gateways,
            service.NewIntent(
                amount=Money(op[2], CURRENCY),
                provider=provider,
                customer_id=world.customers[op[1]],
                capture_method=op[-1],
            ),
            actor="property",
        )
        world.intents.append(created["id"])
        method = op[3] if kind == "pay_card" else "wallet"
        world.note(
            await service.confirm(conn, gateways, created["id"], payment_method=method, actor="property")
        )
    elif kind == "pay_split":
        rows = await wallet.pay(
            conn, gateways, world.customers[op[1]], Money(op[2], CURRENCY), card_payment_method="pm_card_visa"
        )
        for row in rows:
            world.intents.append(row["id"])
            world.note(row)
    elif kind == "capture" and (intent_id := world.intent(op[1])):
        row = await service.get_intent(conn, intent_id)
        amount = max(1, row["amount_minor"] * op[2] // 100)
        tax = amount // 10
        fee = min(500, amount - tax)
        split = OrderSplit(
            merchant_id=world.merchants[op[2] % 2],
            items_minor=amount - tax - fee,
            delivery_fee_minor=fee,
            tax_minor=tax,
            courier_id=world.merchants[2],
            merchant_category="restaurant",
        )
        legs = order_legs(split, commission_bp=1_500, currency=CURRENCY) if op[2] % 3 else None
        world.note(
            await service.capture(
                conn, gateways, intent_id, amount=Money(amount, CURRENCY), actor="property", settlement=legs
            )
        )
    elif kind in ("refund", "refund_amount") and (intent_id := world.intent(op[1], captured=True)):
        # a share of what was captured (over 100% must be refused), or a raw amount
        captured = (await service.get_intent(conn, intent_id))["amount_captured"]
        amount = max(1, captured * op[2] // 100) if kind == "refund" else op[2]
        body = {"amount_minor": amount, "bearer": op[3]}

        async def refund() -> RefundOut:
            row = await service.refund(
                conn,
                gateways,
                intent_id,
                amount=Money(amount, CURRENCY),
                bearer=op[3],
                request_key=f"k{op[4]}",
                actor="property",
            )
            return RefundOut.of(row)

        await run_once(conn, scope=f"refund:{intent_id}", key=f"k{op[4]}", body=body, operation=refund)
    elif kind == "cancel" and (intent_id := world.intent(op[1])):
        await service.cancel(conn, gateways, intent_id, actor="property", reason="property")
    elif kind == "credit":
        await wallet.grant_credit(
            conn,
            world.customers[op[1]],
            Money(op[2], CURRENCY),
            reason="cashback",
            business_key=f"{world.customers[op[1]]}:{op[3]}",
        )
    elif kind == "reconcile":
        await service.reconcile(conn, gateways)
    elif kind == "topup_keyed":
        await _keyed_top_up(conn, world, world.customers[op[1]], op[2], f"t{op[3]}")
    elif kind == "confirm_keyed" and (keyed_intent := world.intent(op[1])):
        await _keyed_confirm(conn, world, keyed_intent, f"c{op[2]}")
    elif kind == "payout":
        await payouts.run_payouts(
            conn,
            currency=CURRENCY,
            period_end=utc_now(),
            min_payout_minor=PAYOUT_MINIMUMS[op[1]],
            actor="property",
        )
    elif kind == "dispute":
        party = world.merchants[op[1]]  # merchants[2] also delivers, as the courier
        opened = await disputes.open_dispute(
            conn,
            party_kind="courier" if op[1] == 2 else "merchant",
            party_id=party,
            reason="property",
            actor="property",
        )
        world.disputes.append(opened["id"])
    elif kind == "resolve" and world.disputes:
        await disputes.resolve_dispute(conn, world.disputes.pop(0), resolution="property", actor="property")


async def _keyed_top_up(conn: Connection, world: World, user: uuid.UUID, amount: int, key: str) -> None:
    """A top-up as the route runs it: the same key replays the first answer, never a second charge."""
    scope = f"wallet.top_up:{user}"

    async def top_up() -> IntentOut:
        row = await wallet.top_up(
            conn, default_gateways(conn), user, Money(amount, CURRENCY), payment_method=KEYED_CARD
        )
        return IntentOut.of(row)

    response = await run_once(
        conn, scope=scope, key=key, body={"amount_minor": amount}, operation=top_up, status=201
    )
    world.replies[(scope, key)].append(response.content)


async def _keyed_confirm(conn: Connection, world: World, intent_id: uuid.UUID, key: str) -> None:
    """A confirmation as the route runs it, retried under the same key by any worker."""
    gateways = default_gateways(conn)
    row = await service.get_intent(conn, intent_id)
    method = "wallet" if row["provider"] == "wallet" else "pm_card_visa"
    scope = f"payment_intents.confirm:{intent_id}"

    async def confirm() -> IntentOut:
        return IntentOut.of(
            await service.confirm(conn, gateways, intent_id, payment_method=method, actor="property")
        )

    response = await run_once(conn, scope=scope, key=key, body={"payment_method": method}, operation=confirm)
    world.replies[(scope, key)].append(response.content)
    world.note(await service.get_intent(conn, intent_id))


async def _worker(url: str, world: World, program: list[tuple[Any, ...]]) -> None:
    conn = await _connect(url)
    try:
        for op in program:
            # a refused input or an illegal transition is a 4xx, expected in random sequences
            with contextlib.suppress(DomainError):
                await _step(conn, world, op)
    finally:
        await conn.close()


async def _check(url: str, world: World) -> None:
    conn = await _connect(url)
    try:
        for (scope, key), replies in world.replies.items():
            assert all(reply == replies[0] for reply in replies), (scope, key, replies)
        for _ in range(2):
            await service.reconcile(conn, default_gateways(conn), older_than=timedelta(0))
        await assert_ledger_invariants(conn)

        async def rows(sql: str) -> list[dict[str, Any]]:
            return list(await (await conn.execute(sql)).fetchall())

        assert await rows("SELECT id FROM payment_intents WHERE status = 'processing'") == []
        assert await rows("SELECT id FROM payment_refunds WHERE status = 'pending'") == []
        # captured minus refunded per intent is exactly what the ledger moved for it
        assert (
            await rows(
                """
            SELECT i.id FROM payment_intents i
             WHERE i.amount_refunded <> (SELECT COALESCE(sum(amount_minor), 0) FROM payment_refunds r
                                          WHERE r.intent_id = i.id AND r.status = 'succeeded')
                OR (i.amount_captured > 0) <> EXISTS (SELECT 1 FROM ledger_entries e
                                                      WHERE e.business_key = 'payment.captured:' || i.id)
            """
            )
            == []
        )
        # every refund posted once, for its amount, whatever the retries
        assert (
            await rows(
                """
            SELECT r.id FROM payment_refunds r
             WHERE (r.status = 'succeeded') <> EXISTS (
                    SELECT 1 FROM ledger_entries e JOIN ledger_postings p ON p.entry_id = e.id
                     WHERE e.business_key = 'payment.refunded:' || r.id AND p.amount_minor = -r.amount_minor)
            """
            )
            == []
        )
        # wallet money is conserved: top-ups + credits - wallet spends + wallet refunds = balances + holds
        [conservation] = await rows(
            """
            SELECT
              (SELECT COALESCE(sum(b.balance_minor), 0) FROM ledger_balances b JOIN ledger_accounts a
                 ON a.id = b.account_id WHERE a.kind IN ('customer_wallet', 'wallet_hold')) AS held,
              (SELECT COALESCE(sum(amount_captured), 0) FROM payment_intents WHERE purpose = 'topup')
              + (SELECT COALESCE(sum(b.balance_minor), 0) FROM ledger_balances b JOIN ledger_accounts a
                   ON a.id = b.account_id WHERE a.kind = 'promotions_expense')
              - (SELECT COALESCE(sum(amount_captured - amount_refunded), 0) FROM payment_intents
                  WHERE provider = 'wallet') AS expected
            """
        )
        assert conservation["held"] == conservation["expected"], conservation
        assert (
            await rows(
                "SELECT request_key FROM payment_refunds GROUP BY intent_id, request_key HAVING count(*) > 1"
            )
            == []
        )
        # a keyed top-up intent exists only as the one stored answer of its key, and vice versa
        keyed = await rows(
            f"""
            SELECT
              (SELECT count(*) FROM payment_intents
                WHERE purpose = 'topup' AND payment_method = '{KEYED_CARD}') AS intents,
              (SELECT count(*) FROM idempotency_keys
                WHERE scope LIKE 'wallet.top_up:%' AND response_status IS NOT NULL) AS answers,
              (SELECT count(*) FROM payment_intents i
                WHERE i.purpose = 'topup' AND i.payment_method = '{KEYED_CARD}'
                  AND (SELECT count(*) FROM idempotency_keys k WHERE k.scope LIKE 'wallet.top_up:%'
                          AND k.response_body ->> 'id' = i.id::text) <> 1) AS orphans
            """
        )
        assert keyed[0]["intents"] == keyed[0]["answers"], keyed
        assert keyed[0]["orphans"] == 0, keyed
        # payouts: one entry each, debiting the party's payable by the amount; clearing holds them all
        [totals] = await rows(
            """
            SELECT (SELECT count(*) FROM payouts) AS payouts,
                   (SELECT count(*) FROM ledger_entries WHERE kind = 'payout.scheduled') AS entries,
                   (SELECT COALESCE(sum(amount_minor), 0) FROM payouts) AS paid,
                   (SELECT COALESCE(-sum(p.amount_minor), 0) FROM ledger_postings p
                      JOIN ledger_accounts a ON a.id = p.account_id
                     WHERE a.kind = 'payouts_clearing') AS cleared
            """
        )
        assert totals["payouts"] == totals["entries"], totals
        assert totals["paid"] == totals["cleared"], totals
        assert (
            await rows(
                """
            SELECT po.id FROM payouts po WHERE NOT EXISTS (
                SELECT 1 FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
                 WHERE p.entry_id = po.entry_id AND a.owner_id = po.party_id
                   AND a.kind = po.party_kind || '_payable' AND p.amount_minor = po.amount_minor)
            """
            )
            == []
        )
        # nobody is ever paid out more than was ever credited to them
        assert (
            await rows(
                """
            SELECT a.key FROM ledger_accounts a
             WHERE a.kind IN ('merchant_payable', 'courier_payable')
               AND (SELECT COALESCE(sum(po.amount_minor), 0) FROM payouts po
                     WHERE po.party_id = a.owner_id AND po.party_kind || '_payable' = a.kind
                       AND po.currency = a.currency)
                 > (SELECT COALESCE(-sum(p.amount_minor), 0) FROM ledger_postings p
                     WHERE p.account_id = a.id AND p.amount_minor < 0)
            """
            )
            == []
        )
    finally:
        await conn.close()


async def _run(url: str, program: list[list[tuple[Any, ...]]]) -> None:
    world = World()
    await asyncio.gather(*(_worker(url, world, ops) for ops in program))
    await _check(url, world)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(program=programs)
def test_concurrent_money_operations_keep_the_books_balanced(
    db_url: str, program: list[list[tuple[Any, ...]]]
) -> None:
    asyncio.run(_run(db_url, program))
