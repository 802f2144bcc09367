"""The back-office payout and dispute routes: who may call them, and what they return."""

from __future__ import annotations

import csv
import io
import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.domains.ledger import service as ledger
from api.domains.ledger.accounts import AccountKind, AccountRef
from api.security.principal import Role
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.settings import Settings
from tests.api.payments.helpers import assert_ledger_invariants, scalar
from tests.api.payments.test_payouts import _earn
from tests.api.profiles.users import auth

Client = AsyncTestClient[Litestar]


def _admin(settings: Settings) -> dict[str, str]:
    return auth(settings, uuid.uuid4(), Role.ADMIN, mfa=True)


async def test_an_admin_runs_lists_and_downloads_statements(
    client: Client, conn: Connection, settings: Settings
) -> None:
    shop, rider = uuid.uuid4(), uuid.uuid4()
    await _earn(conn, shop, 40_000, courier=rider, fee=5_000)
    body = {"currency": "NPR", "period_end": utc_now().isoformat(), "min_payout_minor": 1_000}
    ran = await client.post("/v1/admin/payouts/batches", json=body, headers=_admin(settings))
    assert ran.status_code == 200, ran.text
    result = ran.json()
    assert result["created"] is True
    assert {(p["party_kind"], p["amount_minor"]) for p in result["batch"]["payouts"]} == {
        ("merchant", 36_000),
        ("courier", 5_000),
    }
    again = await client.post("/v1/admin/payouts/batches", json=body, headers=_admin(settings))
    assert again.json()["created"] is False
    assert again.json()["batch"]["id"] == result["batch"]["id"]

    listed = await client.get("/v1/admin/payouts/batches", headers=_admin(settings))
    assert [(b["id"], b["payouts"], b["total_minor"]) for b in listed.json()["items"]] == [
        (result["batch"]["id"], 2, 41_000)
    ]
    url = f"/v1/admin/payouts/batches/{result['batch']['id']}/statements/courier/{rider}"
    statement = await client.get(url, headers=_admin(settings))
    assert statement.status_code == 200
    assert statement.headers["content-type"].startswith("text/csv")
    assert "attachment" in statement.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(statement.text)))
    assert [(r["kind"], r["amount_minor"]) for r in rows[1:3]] == [
        ("payment.captured", "5000"),
        ("payout.scheduled", "-5000"),
    ]
    bad_kind = await client.get(url.replace("/courier/", "/customer/"), headers=_admin(settings))
    assert bad_kind.status_code == 422
    missing = await client.get(
        f"/v1/admin/payouts/batches/{uuid.uuid4()}/statements/courier/{rider}", headers=_admin(settings)
    )
    assert missing.status_code == 404
    await assert_ledger_invariants(conn)


async def test_the_batch_list_pages_by_cursor(client: Client, conn: Connection, settings: Settings) -> None:
    for _ in range(3):
        body = {"currency": "NPR", "period_end": utc_now().isoformat()}
        assert (
            await client.post("/v1/admin/payouts/batches", json=body, headers=_admin(settings))
        ).status_code == 200
    first = (await client.get("/v1/admin/payouts/batches?limit=2", headers=_admin(settings))).json()
    rest = (
        await client.get(
            f"/v1/admin/payouts/batches?limit=2&cursor={first['next_cursor']}", headers=_admin(settings)
        )
    ).json()
    ends = [b["period_end"] for b in first["items"] + rest["items"]]
    assert len(set(ends)) == 3
    assert ends == sorted(ends, reverse=True)
    assert rest["next_cursor"] is None
    broken = await client.get("/v1/admin/payouts/batches?cursor=nope", headers=_admin(settings))
    assert broken.status_code == 422


async def test_only_privileged_staff_with_a_second_factor_may_use_them(
    client: Client, conn: Connection, settings: Settings
) -> None:
    body = {"currency": "NPR"}
    for headers in (
        auth(settings, uuid.uuid4(), Role.MERCHANT),
        auth(settings, uuid.uuid4(), Role.ADMIN, mfa=False),
        auth(settings, uuid.uuid4(), Role.SUPPORT, mfa=True),  # support reviews; only admins pay out
    ):
        assert (await client.post("/v1/admin/payouts/batches", json=body, headers=headers)).status_code == 403
    assert await scalar(conn, "SELECT count(*) FROM payout_batches") == 0


async def test_support_opens_and_resolves_a_dispute_that_holds_payouts(
    client: Client, conn: Connection, settings: Settings
) -> None:
    shop = uuid.uuid4()
    await _earn(conn, shop, 10_000)
    support = auth(settings, uuid.uuid4(), Role.SUPPORT, mfa=True)
    opened = await client.post(
        "/v1/admin/disputes",
        json={"party_kind": "merchant", "party_id": str(shop), "reason": "chargeback"},
        headers=support,
    )
    assert opened.status_code == 201, opened.text
    assert opened.json()["status"] == "open"
    run = {"currency": "NPR", "period_end": utc_now().isoformat(), "min_payout_minor": 0}
    held = (await client.post("/v1/admin/payouts/batches", json=run, headers=_admin(settings))).json()
    assert held["held"] == 1
    assert held["batch"]["payouts"] == []
    merchant = AccountRef(AccountKind.MERCHANT_PAYABLE, "NPR", shop)
    assert await ledger.balance(conn, merchant) == 9_000
    resolved = await client.post(
        f"/v1/admin/disputes/{opened.json()['id']}/resolve", json={"resolution": "won"}, headers=support
    )
    assert resolved.status_code == 200
    assert resolved.json()["status"] == "resolved"
    twice = await client.post(
        f"/v1/admin/disputes/{opened.json()['id']}/resolve", json={"resolution": "won"}, headers=support
    )
    assert twice.status_code == 409
    run["period_end"] = utc_now().isoformat()
    paid = (await client.post("/v1/admin/payouts/batches", json=run, headers=_admin(settings))).json()
    assert [p["amount_minor"] for p in paid["batch"]["payouts"]] == [9_000]
