"""HTTP surface of object storage: upload raw bytes for a purpose, download your own."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter

from api.security.principal import Principal
from api.storage import service
from api.storage.schemas import StoredObject
from api.storage.store import ObjectStore, store_for
from api.storage.validation import MAX_UPLOAD_BYTES
from nearx.db import Connection
from nearx.settings import Settings


def object_store(state: State, settings: Settings) -> ObjectStore:
    """``app.state.object_store`` when an embedder set one, else the store the settings choose."""
    store: ObjectStore = state.get("object_store") or store_for(settings)
    return store


class UploadController(Controller):
    path = "/v1/uploads"
    tags = ["storage"]  # noqa: RUF012 (Litestar reads it as a class attribute)

    @post(
        "/{purpose:str}",
        operation_id="uploads_create",
        summary="Upload a document or media file (raw body)",
        request_max_body_size=MAX_UPLOAD_BYTES + 1,
    )
    async def upload(
        self,
        purpose: FromPath[Literal["document", "media"]],
        request: Request[Any, Any, Any],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        state: State,
        content_type: Annotated[str | None, Parameter(header="content-type", required=False)] = None,
    ) -> StoredObject:
        data = await request.body()  # raw bytes; the size cap is enforced while reading
        store = object_store(state, settings)
        return await service.upload(conn, store, principal, purpose, data, content_type)

    @get("/{key:str}", operation_id="uploads_get", summary="Download an object you own")
    async def download(
        self,
        key: FromPath[str],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        settings: NamedDependency[Settings],
        state: State,
    ) -> Response[bytes]:
        data, media_type = await service.download(conn, object_store(state, settings), principal, key)
        return Response(data, media_type=media_type, headers={"X-Content-Type-Options": "nosniff"})
