"""``nearx payments reconcile`` settles what a provider timeout left open."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from api.domains.payments import service
from nearx.db import Connection
from nearx.money import Money
from tests.api.payments.helpers import gateways


async def test_the_cli_reconciles_a_timed_out_authorization(
    conn: Connection, db_url: str, tmp_path: Path
) -> None:
    gws = gateways(conn)
    intent = await service.create_intent(
        conn, gws, service.NewIntent(amount=Money(1_000, "NPR"), provider="sandbox"), actor="t"
    )
    stuck = await service.confirm(conn, gws, intent["id"], payment_method="pm_card_timeout", actor="t")
    assert stuck["status"] == "processing"
    env = {**os.environ, "NEARX_DATABASE_URL": db_url, "NEARX_HOME": str(tmp_path)}
    nearx = Path(sys.executable).parent / "nearx"
    result = subprocess.run(  # noqa: ASYNC221 - the CLI is what is under test
        [str(nearx), "payments", "reconcile", "--older-than-s", "0"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "settled 1 intent(s)" in result.stdout
    assert (await service.get_intent(conn, intent["id"]))["status"] == "requires_capture"
