from __future__ import annotations

import asyncio

import psycopg
import pytest
from psycopg.rows import dict_row

from api.errors import InvalidInput
from api.idempotency import claim, remember, request_fingerprint, require_key


async def _once(db_url: str, key: str, body: dict[str, object], work_done: list[int]) -> object:
    """The shape of an idempotent write: claim, work, remember, all in one transaction."""
    connection = await psycopg.AsyncConnection.connect(db_url, autocommit=True, row_factory=dict_row)
    async with connection as conn, conn.transaction():
        fingerprint = request_fingerprint(body)
        replay = await claim(conn, scope="test.op", key=key, fingerprint=fingerprint)
        if replay is not None:
            return replay.body
        await asyncio.sleep(0.05)  # widen the race window
        work_done.append(1)
        result = {"order": len(work_done)}
        await remember(conn, scope="test.op", key=key, status=201, body=result)
        return result


async def test_concurrent_retries_do_the_work_once(db_url: str) -> None:
    work_done: list[int] = []
    results = await asyncio.gather(*(_once(db_url, "k-1", {"x": 1}, work_done) for _ in range(8)))
    assert len(work_done) == 1
    assert all(result == {"order": 1} for result in results)


async def test_same_key_with_another_body_is_refused(db_url: str) -> None:
    await _once(db_url, "k-2", {"x": 1}, [])
    with pytest.raises(InvalidInput, match="different request"):
        await _once(db_url, "k-2", {"x": 2}, [])


def test_fingerprint_ignores_key_order_and_keys_are_required() -> None:
    assert request_fingerprint({"a": 1, "b": 2}) == request_fingerprint({"b": 2, "a": 1})
    with pytest.raises(InvalidInput):
        require_key(None)
    with pytest.raises(InvalidInput):
        require_key("x" * 256)
