"""Provider calendars, open slots, holds, deposits, and no double booking under concurrency."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.domains.bookings import service as bookings
from api.domains.bookings.ports import DepositOutcome, DepositRequest
from nearx.clock import utc_now
from tests.api.marketplace.conftest import Actor, MakeMerchant, MakeProduct, MakeUser

KTM_TZ = ZoneInfo("Asia/Kathmandu")


def _day(offset: int = 7) -> date:
    return (utc_now().astimezone(KTM_TZ) + timedelta(days=offset)).date()


def _at(day: date, hh: int, mm: int = 0) -> str:
    return datetime.combine(day, time(hh, mm), KTM_TZ).isoformat()


def _key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


@pytest.fixture
async def plumber(client: AsyncTestClient[Litestar], make_merchant: MakeMerchant) -> dict[str, Any]:
    owner, provider = await make_merchant(kind="provider", category="plumber", name="Pipes")
    service = await client.post(
        f"/v1/merchants/{provider['id']}/services",
        json={"name": "Fix a tap", "duration_min": 60, "price_minor": 150_000, "deposit_minor": 20_000},
        headers=owner.headers,
    )
    calendar = {
        "availability": [{"weekday": d, "starts": "09:00:00", "ends": "17:00:00"} for d in range(7)],
        "buffer_min": 15,
        "travel_min": 15,
        "slot_step_min": 30,
        "free_cancel_hours": 24,
        "min_reschedule_hours": 2,
    }
    response = await client.put(
        f"/v1/providers/{provider['id']}/calendar", json=calendar, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    return {"owner": owner, "provider": provider, "service": service.json()["id"], "calendar": calendar}


async def _slots(
    client: AsyncTestClient[Litestar], who: Actor, plumber: dict[str, Any], day: date
) -> list[str]:
    response = await client.get(
        f"/v1/providers/{plumber['provider']['id']}/slots",
        params={"date": day.isoformat(), "service_id": plumber["service"]},
        headers=who.headers,
    )
    assert response.status_code == 200, response.text
    return [
        datetime.fromisoformat(s["starts_at"]).astimezone(KTM_TZ).strftime("%H:%M") for s in response.json()
    ]


async def _hold(
    client: AsyncTestClient[Litestar], who: Actor, plumber: dict[str, Any], starts_at: str, **extra: Any
) -> Any:
    body = {"service_id": plumber["service"], "starts_at": starts_at, **extra}
    return await client.post("/v1/bookings", json=body, headers={**who.headers, **_key()})


async def _count(conn: Any) -> int:
    row = await (await conn.execute("SELECT count(*) AS n FROM bookings")).fetchone()
    return int(row["n"])


async def test_slots_follow_availability_buffers_travel_and_bookings(
    client: AsyncTestClient[Litestar], plumber: dict[str, Any], make_user: MakeUser
) -> None:
    customer = await make_user()
    day = _day()
    slots = await _slots(client, customer, plumber, day)
    assert slots[0] == "09:00"
    assert slots[-1] == "16:00"  # a 60-minute job must end by 17:00
    assert len(slots) == 15
    assert (await _hold(client, customer, plumber, _at(day, 10))).status_code == 201
    # 10:00-11:00 blocks 09:45-11:15; a slot needs 15 min travel before and 15 min buffer after
    after = await _slots(client, customer, plumber, day)
    assert after[0] == "11:30"
    assert "09:00" not in after


async def test_twenty_concurrent_bookings_of_one_slot_give_exactly_one(
    client: AsyncTestClient[Litestar], plumber: dict[str, Any], make_user: MakeUser, conn: Any
) -> None:
    customers = [await make_user() for _ in range(20)]
    starts_at = _at(_day(), 11)
    responses = await asyncio.gather(*(_hold(client, c, plumber, starts_at) for c in customers))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 1
    assert codes.count(409) == 19
    assert await _count(conn) == 1


async def test_the_database_refuses_an_overlap_even_without_the_service(
    client: AsyncTestClient[Litestar], plumber: dict[str, Any], make_user: MakeUser, conn: Any
) -> None:
    customer = await make_user()
    held = (await _hold(client, customer, plumber, _at(_day(), 13))).json()
    with pytest.raises(psycopg.errors.ExclusionViolation):
        await conn.execute(
            """
            INSERT INTO bookings
                (id, provider_id, service_id, customer_id, city_id, starts_at, ends_at, blocked_from,
                 blocked_until, status, hold_expires_at, price_minor, deposit_minor, currency)
            SELECT gen_random_uuid(), provider_id, service_id, customer_id, city_id,
                   starts_at + interval '30 min', ends_at + interval '30 min',
                   blocked_from + interval '30 min', blocked_until + interval '30 min',
                   'confirmed', hold_expires_at, price_minor, deposit_minor, currency
            FROM bookings WHERE id = %s
            """,
            (held["id"],),
        )


BAD_STARTS = [
    lambda: _at(_day(-1), 10),  # in the past
    lambda: _at(_day(), 8),  # before opening
    lambda: _at(_day(), 16, 30),  # would end after closing
    lambda: _at(_day(), 10, 10),  # off the 30-minute grid
    lambda: datetime.combine(_day(), time(10)).isoformat(),  # no offset
]


async def test_bad_slots_are_refused_and_write_nothing(
    client: AsyncTestClient[Litestar], plumber: dict[str, Any], make_user: MakeUser, conn: Any
) -> None:
    for starts_at in BAD_STARTS:
        customer = await make_user()
        response = await _hold(client, customer, plumber, starts_at())
        assert response.status_code == 422, response.text
        assert await _count(conn) == 0


async def test_day_off_has_no_slots_and_cannot_be_booked(
    client: AsyncTestClient[Litestar], plumber: dict[str, Any], make_user: MakeUser
) -> None:
    day = _day()
    calendar = {
        **plumber["calendar"],
        "exceptions": [{"day": day.isoformat(), "available": False, "reason": "Tihar"}],
    }
    await client.put(
        f"/v1/providers/{plumber['provider']['id']}/calendar", json=calendar, headers=plumber["owner"].headers
    )
    customer = await make_user()
    assert await _slots(client, customer, plumber, day) == []
    assert (await _hold(client, customer, plumber, _at(day, 10))).status_code == 422


class _Deposits:
    def __init__(self, status: str) -> None:
        self.status, self.requests = status, []  # type: list[DepositRequest]

    async def collect_deposit(self, conn: Any, request: DepositRequest) -> DepositOutcome:
        self.requests.append(request)
        return DepositOutcome(status=self.status, payment_reference="dep_1")


async def test_hold_confirm_with_deposit_reschedule_and_cancel_policy(
    app: Litestar, client: AsyncTestClient[Litestar], plumber: dict[str, Any], make_user: MakeUser, conn: Any
) -> None:
    customer, owner = await make_user(), plumber["owner"]
    day = _day()
    booking = (await _hold(client, customer, plumber, _at(day, 10))).json()
    assert booking["status"] == "held"

    app.state.deposit_gateway = _Deposits("failed")
    refused = await client.post(f"/v1/bookings/{booking['id']}/confirm", headers=customer.headers)
    assert refused.status_code == 409
    assert (await client.get(f"/v1/bookings/{booking['id']}", headers=customer.headers)).json()[
        "status"
    ] == "held"

    deposits = _Deposits("succeeded")
    app.state.deposit_gateway = deposits
    assert (
        await client.post(f"/v1/bookings/{booking['id']}/confirm", headers=owner.headers)
    ).status_code == 409
    confirmed = await client.post(f"/v1/bookings/{booking['id']}/confirm", headers=customer.headers)
    assert confirmed.json()["status"] == "confirmed"
    assert confirmed.json()["deposit_status"] == "succeeded"
    assert [r.amount.amount_minor for r in deposits.requests] == [20_000]

    moved = await client.post(
        f"/v1/bookings/{booking['id']}/reschedule", json={"starts_at": _at(day, 14)}, headers=customer.headers
    )
    assert moved.status_code == 200, moved.text
    assert "14:00" in _local(moved.json()["starts_at"])
    other = await make_user()
    assert (
        await _hold(client, other, plumber, _at(day, 10))
    ).status_code == 201  # the old time is free again
    assert (await _hold(client, other, plumber, _at(day, 14))).status_code == 409

    cancelled = await client.post(
        f"/v1/bookings/{booking['id']}/cancel", json={"reason": "plans changed"}, headers=customer.headers
    )
    assert cancelled.json()["cancellation_fee_minor"] == 0  # a week ahead: free
    history = await (
        await conn.execute(
            "SELECT to_status, actor_kind FROM booking_status_history WHERE booking_id = %s ORDER BY at, id",
            (booking["id"],),
        )
    ).fetchall()
    assert [(h["to_status"], h["actor_kind"]) for h in history] == [
        ("held", "customer"),
        ("confirmed", "customer"),
        ("confirmed", "customer"),
        ("cancelled", "customer"),
    ]


def _local(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(KTM_TZ).strftime("%H:%M")


async def test_late_customer_cancellation_forfeits_the_deposit(
    client: AsyncTestClient[Litestar], plumber: dict[str, Any], make_user: MakeUser
) -> None:
    strict = {**plumber["calendar"], "free_cancel_hours": 720}  # anything within 30 days is "late"
    url = f"/v1/providers/{plumber['provider']['id']}/calendar"
    await client.put(url, json=strict, headers=plumber["owner"].headers)
    customer = await make_user()
    booking = (await _hold(client, customer, plumber, _at(_day(), 10))).json()
    await client.post(f"/v1/bookings/{booking['id']}/confirm", headers=customer.headers)
    cancelled = await client.post(
        f"/v1/bookings/{booking['id']}/cancel", json={"reason": "sorry"}, headers=customer.headers
    )
    assert cancelled.json()["cancellation_fee_minor"] == 20_000  # inside the no-free-cancel window


async def test_expired_hold_frees_the_slot_and_cannot_be_confirmed(
    client: AsyncTestClient[Litestar], plumber: dict[str, Any], make_user: MakeUser, conn: Any
) -> None:
    first, second = await make_user(), await make_user()
    starts_at = _at(_day(), 15)
    booking = (await _hold(client, first, plumber, starts_at)).json()
    await conn.execute("UPDATE bookings SET hold_expires_at = now() - interval '1 second'")
    assert (
        await client.post(f"/v1/bookings/{booking['id']}/confirm", headers=first.headers)
    ).status_code == 409
    assert (await _hold(client, second, plumber, starts_at)).status_code == 201
    assert await bookings.release_expired_holds(conn, utc_now()) == 1
    row = await (await conn.execute("SELECT status FROM bookings WHERE id = %s", (booking["id"],))).fetchone()
    assert row["status"] == "released"


async def test_try_before_buy_visit_linked_to_an_order(
    client: AsyncTestClient[Litestar],
    plumber: dict[str, Any],
    make_user: MakeUser,
    make_merchant: MakeMerchant,
    make_product: MakeProduct,
    conn: Any,
) -> None:
    owner, shop = await make_merchant(name="Shoes")
    shoes = await make_product(owner, shop, name="Boots", category="footwear", try_before_buy=True)
    customer = await make_user()
    order = await client.post(
        "/v1/orders",
        json={
            "items": [{"variant_id": shoes["variants"][0]["id"], "quantity": 1}],
            "delivery": {"lat": 27.701, "lng": 85.321},
        },
        headers={**customer.headers, **_key()},
    )
    child_id = order.json()["merchant_orders"][0]["id"]
    stranger = await make_user()
    assert (
        await _hold(client, stranger, plumber, _at(_day(), 12), linked_order_id=child_id)
    ).status_code == 422
    visit = (await _hold(client, customer, plumber, _at(_day(), 12), linked_order_id=child_id)).json()
    await client.post(f"/v1/bookings/{visit['id']}/confirm", headers=customer.headers)
    url = f"/v1/bookings/{visit['id']}/complete"
    assert (await client.post(url, json={}, headers=plumber["owner"].headers)).status_code == 422
    assert (
        await client.post(url, json={"trial_outcome": "kept"}, headers=customer.headers)
    ).status_code == 409
    done = await client.post(url, json={"trial_outcome": "kept"}, headers=plumber["owner"].headers)
    assert done.json()["trial_outcome"] == "kept"
    events = await (
        await conn.execute(
            "SELECT event_type FROM outbox WHERE aggregate_id = %s ORDER BY position", (visit["id"],)
        )
    ).fetchall()
    assert [e["event_type"] for e in events] == [
        "booking.held",
        "booking.confirmed",
        "booking.deposit_requested",
        "booking.completed",
        "booking.trial_kept",
    ]


async def test_sweep_job_releases_expired_holds(
    client: AsyncTestClient[Litestar], plumber: dict[str, Any], make_user: MakeUser, conn: Any, db_url: str
) -> None:
    from api.domains.bookings.jobs import sweep

    customer = await make_user()
    await _hold(client, customer, plumber, _at(_day(), 9))
    assert await sweep(db_url) == 0
    await conn.execute("UPDATE bookings SET hold_expires_at = now() - interval '1 second'")
    assert await sweep(db_url) == 1


async def test_returned_trial_undoes_the_sale(
    client: AsyncTestClient[Litestar],
    plumber: dict[str, Any],
    make_user: MakeUser,
    make_merchant: MakeMerchant,
    make_product: MakeProduct,
    admin: Actor,
    conn: Any,
) -> None:
    owner, shop = await make_merchant(name="Sofas")
    sofa = await make_product(owner, shop, name="Sofa", category="furniture", try_before_buy=True)
    variant = sofa["variants"][0]["id"]
    customer = await make_user()

    async def order() -> dict[str, Any]:
        response = await client.post(
            "/v1/orders",
            json={
                "items": [{"variant_id": variant, "quantity": 1}],
                "delivery": {"lat": 27.701, "lng": 85.321},
            },
            headers={**customer.headers, **_key()},
        )
        child: dict[str, Any] = response.json()["merchant_orders"][0]
        return child

    async def trial(order_id: str, hour: int) -> Any:
        visit = (await _hold(client, customer, plumber, _at(_day(), hour), linked_order_id=order_id)).json()
        await client.post(f"/v1/bookings/{visit['id']}/confirm", headers=customer.headers)
        return await client.post(
            f"/v1/bookings/{visit['id']}/complete",
            json={"trial_outcome": "returned"},
            headers=plumber["owner"].headers,
        )

    delivered = await order()
    for step in ("accepted", "preparing", "ready_for_pickup", "picked_up", "delivered"):
        await client.post(
            f"/v1/merchant-orders/{delivered['id']}/transitions", json={"to": step}, headers=admin.headers
        )
    assert (await trial(delivered["id"], 10)).json()["trial_outcome"] == "returned"
    refunded = await (
        await conn.execute(
            "SELECT o.status, r.amount_minor FROM merchant_orders o "
            "JOIN order_refunds r ON r.order_id = o.id WHERE o.id = %s",
            (delivered["id"],),
        )
    ).fetchone()
    assert (refunded["status"], refunded["amount_minor"]) == ("refunded", delivered["total_minor"])

    placed = await order()
    assert (await trial(placed["id"], 14)).status_code == 200
    row = await (
        await conn.execute("SELECT status, cancelled_by FROM merchant_orders WHERE id = %s", (placed["id"],))
    ).fetchone()
    assert (row["status"], row["cancelled_by"]) == ("cancelled", "system")
    stock = await (
        await conn.execute("SELECT on_hand, reserved FROM inventory WHERE variant_id = %s", (variant,))
    ).fetchone()
    assert (stock["on_hand"], stock["reserved"]) == (
        9,
        0,
    )  # the delivered sofa left stock; the cancelled one never did


async def _calendar(client: AsyncTestClient[Litestar], plumber: dict[str, Any], **changes: Any) -> None:
    response = await client.put(
        f"/v1/providers/{plumber['provider']['id']}/calendar",
        json={**plumber["calendar"], **changes},
        headers=plumber["owner"].headers,
    )
    assert response.status_code == 200, response.text


async def _queue(client: AsyncTestClient[Litestar], who: Actor, plumber: dict[str, Any]) -> Any:
    return await client.get(f"/v1/providers/{plumber['provider']['id']}/bookings", headers=who.headers)


URGENT = {"emergency": True, "emergency_reason": "burst pipe flooding the kitchen"}


async def test_emergency_bookings_need_a_reason_are_audited_and_jump_the_queue(
    client: AsyncTestClient[Litestar], plumber: dict[str, Any], make_user: MakeUser, conn: Any
) -> None:
    customer, stranger = await make_user(), await make_user()
    day = _day()
    for extra in (
        {"emergency": True},  # no reason
        {"emergency_reason": "just because"},  # a reason without the flag
    ):
        assert (await _hold(client, customer, plumber, _at(day, 9), **extra)).status_code == 422
    no_start = await client.post(
        "/v1/bookings", json={"service_id": plumber["service"]}, headers={**customer.headers, **_key()}
    )
    assert no_start.status_code == 422  # only an emergency may leave the start to the provider's calendar
    assert await _count(conn) == 0

    normal = (await _hold(client, customer, plumber, _at(day, 9))).json()
    urgent = (await _hold(client, customer, plumber, _at(day, 15), **URGENT)).json()
    assert urgent["emergency"] is True
    assert urgent["emergency_reason"] == URGENT["emergency_reason"]
    assert normal["emergency"] is False

    queue = await _queue(client, plumber["owner"], plumber)
    assert [b["id"] for b in queue.json()] == [urgent["id"], normal["id"]]  # later, yet first
    assert (await _queue(client, stranger, plumber)).status_code in (403, 404)

    audit = await (
        await conn.execute("SELECT booking_id, reason, preempted FROM booking_emergency_audit")
    ).fetchall()
    assert [(a["booking_id"], a["reason"], a["preempted"]) for a in audit] == [
        (uuid.UUID(urgent["id"]), URGENT["emergency_reason"], [])
    ]
    history = await (
        await conn.execute("SELECT reason FROM booking_status_history WHERE booking_id = %s", (urgent["id"],))
    ).fetchall()
    assert [h["reason"] for h in history] == [f"emergency: {URGENT['emergency_reason']}"]
    event = await (
        await conn.execute("SELECT event_type, payload FROM outbox WHERE aggregate_id = %s", (urgent["id"],))
    ).fetchone()
    assert event["event_type"] == "booking.held"
    assert event["payload"]["emergency"] is True


async def test_an_emergency_takes_the_earliest_slot_and_preempts_normal_holds_only_if_allowed(
    client: AsyncTestClient[Litestar], plumber: dict[str, Any], make_user: MakeUser, conn: Any
) -> None:
    # today and tomorrow are off, so "earliest" is 09:00 the day after, whatever the time of day
    off = [{"day": _day(offset).isoformat(), "available": False} for offset in (0, 1)]
    await _calendar(client, plumber, exceptions=off)
    first_day = _day(2)
    waiting, urgent_customer = await make_user(), await make_user()
    normal = (await _hold(client, waiting, plumber, _at(first_day, 9))).json()

    async def emergency() -> Any:
        return await client.post(
            "/v1/bookings",
            json={"service_id": plumber["service"], **URGENT},
            headers={**urgent_customer.headers, **_key()},
        )

    kept_out = (await emergency()).json()  # the policy is off: the hold stands, the next slot is taken
    assert _local(kept_out["starts_at"]) == "10:30"  # 09:00-10:00 blocks until 10:15 (+ travel 15 min)
    assert (await client.get(f"/v1/bookings/{normal['id']}", headers=waiting.headers)).json()[
        "status"
    ] == "held"

    await _calendar(client, plumber, exceptions=off, emergency_preempts_holds=True)
    bumped = (await emergency()).json()
    assert _local(bumped["starts_at"]) == "09:00"
    assert datetime.fromisoformat(bumped["starts_at"]).astimezone(KTM_TZ).date() == first_day
    displaced = (await client.get(f"/v1/bookings/{normal['id']}", headers=waiting.headers)).json()
    assert displaced["status"] == "released"
    assert (
        await client.post(f"/v1/bookings/{normal['id']}/confirm", headers=waiting.headers)
    ).status_code == 409
    history = await (
        await conn.execute(
            "SELECT to_status, actor_kind, reason FROM booking_status_history WHERE booking_id = %s "
            "ORDER BY at, id",
            (normal["id"],),
        )
    ).fetchall()
    assert [(h["to_status"], h["actor_kind"]) for h in history] == [
        ("held", "customer"),
        ("released", "system"),
    ]
    assert bumped["id"] in history[-1]["reason"]
    audit = await (
        await conn.execute(
            "SELECT preempted FROM booking_emergency_audit WHERE booking_id = %s", (bumped["id"],)
        )
    ).fetchone()
    assert audit["preempted"] == [uuid.UUID(normal["id"])]
    released = await (
        await conn.execute(
            "SELECT payload FROM outbox WHERE aggregate_id = %s AND event_type = 'booking.released'",
            (normal["id"],),
        )
    ).fetchone()
    assert released["payload"]["status"] == "released"  # events carry the booking after the change


async def test_an_emergency_never_displaces_a_confirmed_booking(
    client: AsyncTestClient[Litestar], plumber: dict[str, Any], make_user: MakeUser, conn: Any
) -> None:
    await _calendar(client, plumber, emergency_preempts_holds=True)
    customer, urgent_customer = await make_user(), await make_user()
    starts_at = _at(_day(), 11)
    booking = (await _hold(client, customer, plumber, starts_at)).json()
    await client.post(f"/v1/bookings/{booking['id']}/confirm", headers=customer.headers)
    refused = await _hold(client, urgent_customer, plumber, starts_at, **URGENT)
    assert refused.status_code == 409
    assert (await client.get(f"/v1/bookings/{booking['id']}", headers=customer.headers)).json()[
        "status"
    ] == "confirmed"
    assert await _count(conn) == 1
    audit = await (await conn.execute("SELECT count(*) AS n FROM booking_emergency_audit")).fetchone()
    assert audit["n"] == 0


async def test_an_emergency_racing_a_confirm_takes_the_slot_or_yields_never_both(
    client: AsyncTestClient[Litestar], plumber: dict[str, Any], make_user: MakeUser, conn: Any
) -> None:
    await _calendar(client, plumber, emergency_preempts_holds=True)
    day = _day()
    for round_number, hour in enumerate((9, 11, 13, 15)):
        waiting, urgent_customer = await make_user(), await make_user()
        normal = (await _hold(client, waiting, plumber, _at(day, hour))).json()
        racers = [
            client.post(f"/v1/bookings/{normal['id']}/confirm", headers=waiting.headers),
            _hold(client, urgent_customer, plumber, _at(day, hour), **URGENT),
        ]
        if round_number % 2:  # start the emergency first in every other round
            confirm, urgent = reversed(await asyncio.gather(*reversed(racers)))
        else:
            confirm, urgent = await asyncio.gather(*racers)
        # no deadlock, no 500: whoever locked the hold first wins, the other is a clean 409
        assert (confirm.status_code, urgent.status_code) in {(200, 409), (409, 201)}
        row = await (
            await conn.execute(
                "SELECT count(*) AS n FROM bookings WHERE starts_at = %s AND status IN ('held', 'confirmed')",
                (datetime.fromisoformat(_at(day, hour)),),
            )
        ).fetchone()
        assert row["n"] == 1
