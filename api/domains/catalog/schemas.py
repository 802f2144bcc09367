"""Request and response bodies of the catalog: products, variants, service listings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from api.schemas import AmountMinor, Input, Output
from nearx.dietary import Allergen, DietaryTag

TaxClass = Literal["standard", "reduced", "zero", "exempt"]
ArFormat = Literal["glb", "gltf", "usdz"]
Category = Annotated[str, msgspec.Meta(pattern="^[a-z_]{2,40}$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Sku = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Url = Annotated[str, msgspec.Meta(pattern="^https://[^\\s]{1,2000}$", description="an https URL")]
Skill = Annotated[str, msgspec.Meta(pattern="^[a-z_]{2,40}$")]
Stock = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]


class ArAsset(Input, kw_only=True):
    model_url: Url
    format: ArFormat
    scale: Annotated[float, msgspec.Meta(gt=0, le=1000)] = 1.0


class VariantInput(Input, kw_only=True):
    sku: Sku
    name: Name
    price_minor: AmountMinor
    initial_stock: Stock = 0


class ProductInput(Input, kw_only=True):
    name: Name
    category: Category
    variants: Annotated[list[VariantInput], msgspec.Meta(min_length=1, max_length=100)]
    description: Annotated[str, msgspec.Meta(max_length=5000)] = ""
    tax_class: TaxClass = "standard"
    allergens: Annotated[list[Allergen], msgspec.Meta(max_length=14)] = msgspec.field(default_factory=list)
    dietary_tags: Annotated[list[DietaryTag], msgspec.Meta(max_length=20)] = msgspec.field(
        default_factory=list
    )
    images: Annotated[list[Url], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    try_before_buy: bool = False
    ar: ArAsset | None = None


class ServiceInput(Input, kw_only=True):
    name: Name
    description: Annotated[str, msgspec.Meta(max_length=5000)] = ""
    duration_min: Annotated[int, msgspec.Meta(ge=5, le=1440)]
    price_minor: AmountMinor
    deposit_minor: AmountMinor = 0
    required_skills: Annotated[list[Skill], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)


class Variant(Output):
    id: uuid.UUID
    sku: str
    name: str
    price_minor: int
    currency: str
    available: int


class ArAssetOut(Output):
    model_url: str
    format: ArFormat
    scale: float


class Product(Output):
    id: uuid.UUID
    merchant_id: uuid.UUID
    city_id: str
    name: str
    category: str
    description: str
    tax_class: TaxClass
    allergens: list[str]
    dietary_tags: list[str]
    images: list[str]
    try_before_buy: bool
    ar: ArAssetOut | None
    variants: list[Variant]
    created_at: datetime


class ServiceListing(Output):
    id: uuid.UUID
    merchant_id: uuid.UUID
    name: str
    description: str
    duration_min: int
    price_minor: int
    deposit_minor: int
    currency: str
    required_skills: list[str]


class StockInput(Input, kw_only=True):
    on_hand: Stock


class StockLevel(Output):
    variant_id: uuid.UUID
    on_hand: int
    reserved: int
    available: int


class SearchHit(Output):
    product_id: uuid.UUID
    name: str
    category: str
    merchant_id: uuid.UUID
    merchant_name: str
    min_price_minor: int
    currency: str
    allergens: list[str]
    dietary_tags: list[str]
    try_before_buy: bool
    rank: float
    distance_m: int | None


class FacetCount(Output):
    value: str
    count: int


class SearchFacets(Output):
    category: list[FacetCount]
    dietary: list[FacetCount]
    price_min_minor: int | None
    price_max_minor: int | None


class SearchPage(Output):
    items: list[SearchHit]
    facets: SearchFacets
    next_cursor: str | None = None
