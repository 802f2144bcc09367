"""Object storage: sniffed types, size limits, no path traversal, ownership, onboarding documents.

Every test runs twice, on the local directory and on an S3-compatible bucket
(moto's server on 127.0.0.1), through the same HTTP routes and service.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from moto.server import ThreadedMotoServer

from api.errors import InvalidInput, NotFound
from api.security.principal import Role
from api.storage.store import LocalObjectStore, S3ObjectStore, store_for
from nearx.settings import Settings, load_settings
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


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A fake S3 API on a free local port (moto), for the whole session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(params=["local", "s3"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The sandbox settings, choosing the local store or a fresh bucket of the fake S3 server."""
    environ = {"NEARX_HOME": str(tmp_path / "nearx"), "NEARX_DB_POOL_MAX_SIZE": "20"}
    if request.param == "s3":
        bucket = f"nearx-{uuid.uuid4().hex[:12]}"
        environ |= {
            "NEARX_S3_BUCKET": bucket,
            "NEARX_S3_ENDPOINT_URL": request.getfixturevalue("s3_endpoint"),
            "NEARX_S3_REGION": "us-east-1",
            "NEARX_S3_ACCESS_KEY_ID": "test-key",
            "NEARX_S3_SECRET_ACCESS_KEY": "test-secret",
        }
        _s3(load_settings(environ)).create_bucket(Bucket=bucket)
    return load_settings(environ)


def _s3(settings: Settings) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key,
    )


@pytest.fixture
def stored_keys(settings: Settings) -> Callable[[], list[str]]:
    """The keys the chosen store holds, read from the directory or the bucket itself."""

    def keys() -> list[str]:
        if settings.s3_bucket:
            listing = _s3(settings).list_objects_v2(Bucket=settings.s3_bucket)
            return sorted(item["Key"] for item in listing.get("Contents", []))
        root = settings.home / "objects"
        return sorted(p.name for p in root.iterdir() if p.is_file()) if root.exists() else []

    return keys


def test_settings_choose_the_store(settings: Settings) -> None:
    store = store_for(settings)
    assert isinstance(store, S3ObjectStore if settings.s3_bucket else LocalObjectStore)
    with pytest.raises(NotFound):
        store.get("document-00000000-0000-0000-0000-000000000000.pdf")


async def test_upload_and_download_by_owner_only(
    client: AsyncTestClient[Litestar], make_user: MakeUser, admin: Actor, stored_keys: Callable[[], list[str]]
) -> None:
    owner, stranger = await make_user(), await make_user()
    response = await _upload(client, owner, "document", PDF, "application/pdf")
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["content_type"] == "application/pdf"
    assert created["key"].startswith("document-")
    assert created["key"].endswith(".pdf")
    got = await client.get(f"/v1/uploads/{created['key']}", headers=owner.headers)
    assert got.content == PDF
    assert got.headers["content-type"].startswith("application/pdf")
    assert (await client.get(f"/v1/uploads/{created['key']}", headers=stranger.headers)).status_code == 404
    assert (await client.get(f"/v1/uploads/{created['key']}", headers=admin.headers)).status_code == 200
    assert stored_keys() == [created["key"]]


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
    stored_keys: Callable[[], list[str]],
) -> None:
    for purpose, data, ctype, status in REFUSED_UPLOADS:
        who = await make_user()
        response = await _upload(client, who, purpose, data, ctype)
        assert response.status_code == status, response.text
        assert await _rows(conn) == 0
        assert stored_keys() == []


async def test_no_path_traversal(
    client: AsyncTestClient[Litestar],
    make_user: MakeUser,
    settings: Settings,
    stored_keys: Callable[[], list[str]],
) -> None:
    who = await make_user()
    for key in ("..%2F..%2Fetc%2Fpasswd", "document-..%2Fx.pdf", "%2Fetc%2Fpasswd"):
        response = await client.get(f"/v1/uploads/{key}", headers=who.headers)
        assert response.status_code in (404, 422), key
    store = store_for(settings)
    for key in ("../outside.pdf", "/etc/passwd", "document-00000000-0000-0000-0000-000000000000.pdf/../../x"):
        with pytest.raises(InvalidInput):
            store.put(key, b"x")
        with pytest.raises(InvalidInput):
            store.get(key)
    assert not (settings.home / "outside.pdf").exists()
    assert stored_keys() == []


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
