"""Object storage: sniffed types, size limits, no path traversal, ownership, onboarding documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.errors import InvalidInput
from api.security.principal import Role
from api.storage.store import LocalObjectStore
from nearx.settings import Settings
from tests.api.marketplace.conftest import KTM, Actor, MakeUser

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64


async def _upload(
    client: AsyncTestClient[Litestar], who: Actor, purpose: str, data: bytes, ctype: str
) -> Any:
    return await client.post(
        f"/v1/uploads/{purpose}", content=data, headers={**who.headers, "Content-Type": ctype}
    )


async def _rows(conn: Any) -> int:
    row = await (await conn.execute("SELECT count(*) AS n FROM stored_objects")).fetchone()
    return int(row["n"])


def _files(settings: Settings) -> list[Path]:
    root = settings.home / "objects"
    return [p for p in root.iterdir() if p.is_file()] if root.exists() else []


async def test_upload_and_download_by_owner_only(
    client: AsyncTestClient[Litestar], make_user: MakeUser, admin: Actor, settings: Settings
) -> None:
    owner, stranger = await make_user(), await make_user()
    response = await _upload(client, owner, "document", PDF, "application/pdf")
    assert response.status_code == 201, response.text
    stored = response.json()
    assert stored["content_type"] == "application/pdf"
    assert stored["key"].startswith("document-")
    assert stored["key"].endswith(".pdf")
    got = await client.get(f"/v1/uploads/{stored['key']}", headers=owner.headers)
    assert got.content == PDF
    assert got.headers["content-type"].startswith("application/pdf")
    assert (await client.get(f"/v1/uploads/{stored['key']}", headers=stranger.headers)).status_code == 404
    assert (await client.get(f"/v1/uploads/{stored['key']}", headers=admin.headers)).status_code == 200
    assert [p.name for p in _files(settings)] == [stored["key"]]


REFUSED_UPLOADS = [
    ("document", PNG, "application/pdf", 415),  # the bytes say PNG
    ("document", b"#!/bin/sh\nrm -rf /\n", "application/pdf", 415),  # a script renamed .pdf
    ("media", PDF, "application/pdf", 415),  # PDFs are documents, not media
    ("document", b"", "application/pdf", 422),
    ("document", PDF + b"\x00" * (10 * 1024 * 1024), "application/pdf", 413),
    ("secrets", PDF, "application/pdf", 400),
]


async def test_refused_uploads_store_nothing(
    client: AsyncTestClient[Litestar],
    make_user: MakeUser,
    conn: Any,
    settings: Settings,
) -> None:
    for purpose, data, ctype, status in REFUSED_UPLOADS:
        who = await make_user()
        response = await _upload(client, who, purpose, data, ctype)
        assert response.status_code == status, response.text
        assert await _rows(conn) == 0
        assert _files(settings) == []


async def test_no_path_traversal(
    client: AsyncTestClient[Litestar], make_user: MakeUser, tmp_path: Path
) -> None:
    who = await make_user()
    for key in ("..%2F..%2Fetc%2Fpasswd", "document-..%2Fx.pdf", "%2Fetc%2Fpasswd"):
        response = await client.get(f"/v1/uploads/{key}", headers=who.headers)
        assert response.status_code in (404, 422), key
    store = LocalObjectStore(tmp_path / "objects")
    for key in ("../outside.pdf", "/etc/passwd", "document-00000000-0000-0000-0000-000000000000.pdf/../../x"):
        with pytest.raises(InvalidInput):
            store.put(key, b"x")
    assert not (tmp_path / "outside.pdf").exists()


async def test_onboarding_documents_must_be_the_applicants_uploads(
    client: AsyncTestClient[Litestar], make_user: MakeUser, conn: Any
) -> None:
    applicant, other = await make_user(Role.MERCHANT), await make_user()
    mine = (await _upload(client, applicant, "document", PDF, "application/pdf")).json()["key"]
    theirs = (await _upload(client, other, "document", PDF, "application/pdf")).json()["key"]
    body = {"kind": "merchant", "category": "pharmacy", "name": "Meds", **KTM}
    refused = await client.post(
        "/v1/merchants", json={**body, "documents": [theirs]}, headers=applicant.headers
    )
    assert refused.status_code == 422
    assert (await (await conn.execute("SELECT count(*) AS n FROM merchants")).fetchone())["n"] == 0
    accepted = await client.post(
        "/v1/merchants", json={**body, "documents": [mine]}, headers=applicant.headers
    )
    assert accepted.status_code == 201
    row = await (await conn.execute("SELECT documents FROM merchants")).fetchone()
    assert row["documents"] == [mine]
