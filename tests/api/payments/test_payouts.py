"""Payout batches: amounts equal the payables, minimum payout, dispute holds, once per period, CSV."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from api.domains.ledger import service as ledger
from api.domains.ledger.accounts import AccountKind, AccountRef
from api.domains.payments import disputes, marketplace, payouts, service
from api.domains.payments.settlement import OrderSplit
from api.domains.payments.statements import statement_csv
from api.errors import Conflict, InvalidInput
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.money import Money
from tests.api.payments.helpers import assert_ledger_invariants, gateways, scalar

CUSTOMER = uuid.UUID(int=0xC0)


async def _earn(
    conn: Connection, merchant: uuid.UUID, items: int, *, courier: uuid.UUID | None = None, fee: int = 0
) -> uuid.UUID:
    """A captured order: the merchant earns items minus the default 10 % commission; the courier the fee."""
    gws = gateways(conn)
    intent = await service.create_intent(
        conn,
        gws,
        service.NewIntent(amount=Money(items + fee, "NPR"), provider="sandbox", customer_id=CUSTOMER),
        actor="t",
    )
    await service.confirm(conn, gws, intent["id"], payment_method="pm_card_visa", actor="t")
    split = OrderSplit(merchant_id=merchant, items_minor=items, delivery_fee_minor=fee, courier_id=courier)
    done = await marketplace.capture_for_order(conn, gws, intent["id"], split)
    assert done["status"] == "succeeded"
    intent_id: uuid.UUID = intent["id"]
    return intent_id


def _merchant(merchant: uuid.UUID) -> AccountRef:
    return AccountRef(AccountKind.MERCHANT_PAYABLE, "NPR", merchant)


def _courier(courier: uuid.UUID) -> AccountRef:
    return AccountRef(AccountKind.COURIER_PAYABLE, "NPR", courier)


async def _run(conn: Connection, minimum: int = 0) -> payouts.PayoutRun:
    return await payouts.run_payouts(
        conn, currency="NPR", period_end=utc_now(), min_payout_minor=minimum, actor="test"
    )


async def test_a_batch_pays_each_party_its_payable_balance_and_balances_the_ledger(conn: Connection) -> None:
    shop_a, shop_b, rider = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await _earn(conn, shop_a, 10_000, courier=rider, fee=1_500)
    await _earn(conn, shop_a, 5_000)
    await _earn(conn, shop_b, 20_000, courier=rider, fee=2_000)
    before = {
        ("merchant", shop_a): await ledger.balance(conn, _merchant(shop_a)),
        ("merchant", shop_b): await ledger.balance(conn, _merchant(shop_b)),
        ("courier", rider): await ledger.balance(conn, _courier(rider)),
    }
    assert before == {("merchant", shop_a): 13_500, ("merchant", shop_b): 18_000, ("courier", rider): 3_500}

    run = await _run(conn)

    assert run.created
    assert run.paid == 3
    assert run.total_minor == sum(before.values())
    _, rows = await payouts.batch_with_payouts(conn, run.batch["id"])
    assert {(r["party_kind"], r["party_id"]): r["amount_minor"] for r in rows} == before
    assert all(r["status"] == "scheduled" for r in rows)
    for account in (_merchant(shop_a), _merchant(shop_b), _courier(rider)):
        assert await ledger.balance(conn, account) == 0
    clearing = AccountRef(AccountKind.PAYOUTS_CLEARING, "NPR")
    assert await ledger.balance(conn, clearing) == -sum(before.values())  # debit-normal, credited
    assert await scalar(conn, "SELECT count(*) FROM ledger_entries WHERE kind = 'payout.scheduled'") == 3
    await assert_ledger_invariants(conn)


async def test_running_a_period_again_or_a_later_period_pays_nothing_twice(conn: Connection) -> None:
    shop = uuid.uuid4()
    await _earn(conn, shop, 10_000)
    period_end = utc_now()
    first = await payouts.run_payouts(
        conn, currency="NPR", period_end=period_end, min_payout_minor=0, actor="a"
    )
    again = await payouts.run_payouts(
        conn, currency="NPR", period_end=period_end, min_payout_minor=0, actor="b"
    )
    assert first.created
    assert not again.created
    assert again.batch["id"] == first.batch["id"]
    assert again.total_minor == first.total_minor == 9_000
    later = await _run(conn)
    assert later.created
    assert later.paid == 0
    assert later.total_minor == 0
    assert await scalar(conn, "SELECT count(*) FROM payouts") == 1
    assert await scalar(conn, "SELECT count(*) FROM payout_batches") == 2
    await assert_ledger_invariants(conn)


async def test_entries_after_the_period_end_wait_for_the_next_period(conn: Connection) -> None:
    shop = uuid.uuid4()
    await _earn(conn, shop, 10_000)
    cut = utc_now()
    await _earn(conn, shop, 4_000)
    run = await payouts.run_payouts(conn, currency="NPR", period_end=cut, min_payout_minor=0, actor="t")
    assert run.total_minor == 9_000
    assert await ledger.balance(conn, _merchant(shop)) == 3_600
    assert (await _run(conn)).total_minor == 3_600
    assert await ledger.balance(conn, _merchant(shop)) == 0


async def test_the_minimum_payout_carries_small_balances_over(conn: Connection) -> None:
    big, small = uuid.uuid4(), uuid.uuid4()
    await _earn(conn, big, 50_000)
    await _earn(conn, small, 1_000)
    run = await _run(conn, minimum=10_000)
    assert (run.paid, run.below_minimum) == (1, 1)
    assert await ledger.balance(conn, _merchant(small)) == 900
    await _earn(conn, small, 12_000)
    later = await _run(conn, minimum=10_000)
    assert later.paid == 1
    assert later.total_minor == 900 + 10_800
    assert await ledger.balance(conn, _merchant(small)) == 0
    await assert_ledger_invariants(conn)


async def test_an_open_dispute_holds_the_party_until_it_is_resolved(conn: Connection) -> None:
    disputed, other = uuid.uuid4(), uuid.uuid4()
    intent_id = await _earn(conn, disputed, 10_000)
    await _earn(conn, other, 10_000)
    dispute = await disputes.open_dispute(
        conn,
        party_kind="merchant",
        party_id=disputed,
        reason="customer says the goods never arrived",
        intent_id=intent_id,
        actor="user:support",
    )
    held = await _run(conn)
    assert (held.paid, held.held) == (1, 1)
    assert await ledger.balance(conn, _merchant(disputed)) == 9_000
    resolved = await disputes.resolve_dispute(conn, dispute["id"], resolution="proof of delivery", actor="s")
    assert resolved["status"] == "resolved"
    assert resolved["resolved_at"] is not None
    with pytest.raises(Conflict):
        await disputes.resolve_dispute(conn, dispute["id"], resolution="again", actor="s")
    released = await _run(conn)
    assert (released.paid, released.held, released.total_minor) == (1, 0, 9_000)
    history = await (
        await conn.execute(
            "SELECT from_status, to_status FROM payment_dispute_history WHERE dispute_id = %s ORDER BY id",
            (dispute["id"],),
        )
    ).fetchall()
    assert [(h["from_status"], h["to_status"]) for h in history] == [(None, "open"), ("open", "resolved")]
    events = await (
        await conn.execute("SELECT event_type FROM outbox WHERE aggregate_type = 'dispute' ORDER BY position")
    ).fetchall()
    assert [e["event_type"] for e in events] == ["dispute.opened", "dispute.resolved"]


async def test_a_refund_after_the_period_end_never_pushes_a_payable_below_zero(conn: Connection) -> None:
    shop = uuid.uuid4()
    intent_id = await _earn(conn, shop, 10_000)
    cut = utc_now()
    await service.refund(
        conn,
        gateways(conn),
        intent_id,
        amount=Money(5_000, "NPR"),
        bearer="merchant",
        request_key="r1",
        actor="t",
    )
    assert await ledger.balance(conn, _merchant(shop)) == 4_000
    run = await payouts.run_payouts(conn, currency="NPR", period_end=cut, min_payout_minor=0, actor="t")
    assert run.total_minor == 4_000  # earned 9 000 before the cut, but only 4 000 is still owed
    assert await ledger.balance(conn, _merchant(shop)) == 0
    await assert_ledger_invariants(conn)


async def test_bad_runs_are_refused_and_write_nothing(conn: Connection) -> None:
    for kwargs in (
        {"currency": "XYZ", "period_end": utc_now()},
        {"currency": "NPR", "period_end": utc_now() + timedelta(hours=1)},
        {"currency": "NPR", "period_end": utc_now().replace(tzinfo=None)},
    ):
        with pytest.raises(InvalidInput):
            await payouts.run_payouts(conn, min_payout_minor=0, actor="t", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        await disputes.open_dispute(conn, party_kind="customer", party_id=uuid.uuid4(), reason="x", actor="t")
    assert await scalar(conn, "SELECT count(*) FROM payout_batches") == 0
    assert await scalar(conn, "SELECT count(*) FROM payout_holds") == 0


async def test_the_statement_csv_lists_the_period_and_the_payout(conn: Connection) -> None:
    shop = uuid.uuid4()
    first_intent = await _earn(conn, shop, 10_000)
    first = await _run(conn)
    second_intent = await _earn(conn, shop, 20_000)
    second = await _run(conn)

    rows = list(csv.DictReader(io.StringIO(await statement_csv(conn, second.batch["id"], "merchant", shop))))
    assert [r["kind"] for r in rows] == [
        "opening_balance",
        "payment.captured",
        "payout.scheduled",
        "closing_balance",
    ]
    assert rows[0]["balance_minor"] == "0"  # the first batch paid everything before it
    assert (rows[1]["reference_id"], rows[1]["amount_minor"]) == (str(second_intent), "18000")
    assert (rows[2]["amount_minor"], rows[2]["balance_minor"]) == ("-18000", "0")
    assert rows[3]["balance_minor"] == "0"
    assert {r["currency"] for r in rows} == {"NPR"}

    earlier = list(
        csv.DictReader(io.StringIO(await statement_csv(conn, first.batch["id"], "merchant", shop)))
    )
    assert [(r["kind"], r["amount_minor"]) for r in earlier[1:3]] == [
        ("payment.captured", "9000"),
        ("payout.scheduled", "-9000"),
    ]
    assert earlier[1]["reference_id"] == str(first_intent)


async def test_the_cli_runs_a_period_once(conn: Connection, db_url: str, tmp_path: Path) -> None:
    shop = uuid.uuid4()
    await _earn(conn, shop, 30_000)
    env = {**os.environ, "NEARX_DATABASE_URL": db_url, "NEARX_HOME": str(tmp_path)}
    nearx = Path(sys.executable).parent / "nearx"
    period_end = utc_now().isoformat()
    command = [str(nearx), "payments", "payouts", "run", "--currency", "NPR", "--period-end", period_end]
    runs = [
        subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: ASYNC221
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert runs[0].stdout.startswith("created batch")
    assert "1 payout(s), 27000 minor units" in runs[0].stdout
    assert runs[1].stdout.startswith("already ran:")
    assert await scalar(conn, "SELECT count(*) FROM payouts") == 1
