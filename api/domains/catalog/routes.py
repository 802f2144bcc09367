"""HTTP surface of the catalog: products with variants, service listings, stock counts, search."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter

from api.domains.catalog import search as catalog_search
from api.domains.catalog import service
from api.domains.catalog.schemas import (
    Product,
    ProductInput,
    SearchPage,
    ServiceInput,
    ServiceListing,
    StockInput,
    StockLevel,
)
from api.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page, decode_cursor, encode_cursor
from api.security.principal import Principal
from nearx.clock import utc_now
from nearx.db import Connection
from nearx.dietary import Allergen, DietaryTag


class CatalogController(Controller):
    path = "/v1"
    tags = ["catalog"]  # noqa: RUF012 (Litestar reads it as a class attribute)

    @post(
        "/merchants/{merchant_id:uuid}/products",
        operation_id="catalog_create_product",
        summary="List a product",
    )
    async def create_product(
        self,
        merchant_id: FromPath[uuid.UUID],
        data: JSONBody[ProductInput],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> Product:
        return await service.create_product(conn, principal, merchant_id, data)

    @get(
        "/merchants/{merchant_id:uuid}/products",
        operation_id="catalog_list_products",
        summary="A merchant's products",
    )
    async def list_products(
        self,
        merchant_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    ) -> Page[Product]:
        after = uuid.UUID(str(decode_cursor(cursor)[0])) if cursor else None
        items = await service.list_products(conn, principal, merchant_id, after=after, limit=limit)
        return Page(
            items=items, next_cursor=encode_cursor(str(items[-1].id)) if len(items) == limit else None
        )

    @get("/products/{product_id:uuid}", operation_id="catalog_get_product", summary="One product")
    async def get_product(
        self,
        product_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> Product:
        return await service.get_product(conn, principal, product_id)

    @post(
        "/merchants/{merchant_id:uuid}/services",
        operation_id="catalog_create_service",
        summary="List a service",
    )
    async def create_service(
        self,
        merchant_id: FromPath[uuid.UUID],
        data: JSONBody[ServiceInput],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> ServiceListing:
        return await service.create_service(conn, principal, merchant_id, data)

    @get(
        "/merchants/{merchant_id:uuid}/services",
        operation_id="catalog_list_services",
        summary="A provider's services",
    )
    async def list_services(
        self,
        merchant_id: FromPath[uuid.UUID],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> list[ServiceListing]:
        return await service.list_services(conn, principal, merchant_id)

    @put(
        "/variants/{variant_id:uuid}/stock",
        operation_id="inventory_set_stock",
        summary="Record a stock count",
    )
    async def set_stock(
        self,
        variant_id: FromPath[uuid.UUID],
        data: JSONBody[StockInput],
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
    ) -> StockLevel:
        return await service.set_stock(conn, principal, variant_id, data.on_hand)


class SearchController(Controller):
    path = "/v1/catalog"
    tags = ["catalog"]  # noqa: RUF012 (Litestar reads it as a class attribute)

    @get("/search", operation_id="catalog_search", summary="Full-text search with facets and distance")
    async def search(
        self,
        conn: NamedDependency[Connection],
        q: Annotated[str | None, Parameter(max_length=200)] = None,
        lat: Annotated[float | None, Parameter(ge=-90, le=90)] = None,
        lng: Annotated[float | None, Parameter(ge=-180, le=180)] = None,
        radius_m: Annotated[int, Parameter(ge=100, le=25_000)] = 5_000,
        city_id: FromQuery[str | None] = None,
        category: FromQuery[str | None] = None,
        dietary: FromQuery[list[DietaryTag] | None] = None,
        allergen_free: FromQuery[list[Allergen] | None] = None,
        min_price: Annotated[int | None, Parameter(ge=0)] = None,
        max_price: Annotated[int | None, Parameter(ge=0)] = None,
        open_now: FromQuery[bool] = False,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, Parameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    ) -> SearchPage:
        return await catalog_search.search(
            conn,
            q=q,
            lat=lat,
            lng=lng,
            radius_m=radius_m,
            city_id=city_id,
            category=category,
            dietary=[tag.value for tag in dietary or []],
            allergen_free=[allergen.value for allergen in allergen_free or []],
            min_price=min_price,
            max_price=max_price,
            open_now=open_now,
            now=utc_now(),
            cursor=cursor,
            limit=limit,
        )
