"""Platform ids for the simulated entities the demo city seeded, so each entity has one key.

``nearx up`` seeds the simulator's merchants, providers, couriers and a customer into the live
platform (``api/demo``), and ``demo_entities`` records which simulator id (``kat-m-000001``)
became which platform id (a UUID). The simulated history of a seeded entity is that platform
entity's history, so staging keys it by the platform id: the marts, the feature tables (and the
per-hour keys built from them), the training rows and the Feast online store then all know the
entity by the id the platform, and so ``GET /v1/match``, asks for. Entities nobody seeded keep
their simulator ids.

Pure Polars functions of the lake, like staging, which calls them.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pipelines.live import Source, read_extract

DEMO_ENTITIES = Source(
    "demo_entities",
    ("city_id", "source_id"),
    {"city_id": pl.String(), "source_id": pl.String(), "kind": pl.String(), "platform_id": pl.String()},
)
"""The extract of ``demo_entities`` (listed in ``pipelines.extract.EXTRACT_TABLES``)."""

ENTITY_COLUMNS: dict[str, str] = {
    "merchant_id": "merchant",
    "favourite_merchant_id": "merchant",
    "provider_id": "provider",
    "courier_id": "courier",
    "customer_id": "customer",
}
"""Lake columns that name an entity, and the ``demo_entities.kind`` whose ids they hold. Simulator
ids carry their city's prefix, so a source id names one entity across cities."""

ENTITY_KEYS: dict[str, str] = {
    "merchants": "merchant_id",
    "providers": "provider_id",
    "couriers": "courier_id",
    "customers": "customer_id",
}
"""The lake's entity tables and their keys: one row per entity after staging."""

_PLATFORM = "__platform_id"


def platform_ids(lake: Path) -> pl.LazyFrame:
    """``kind, source_id, platform_id`` of every seeded entity (empty before anything was seeded)."""
    return read_extract(lake, DEMO_ENTITIES).lazy().select("kind", "source_id", "platform_id")


def to_platform_ids(frame: pl.LazyFrame, ids: pl.LazyFrame) -> pl.LazyFrame:
    """``frame`` with each entity column holding the platform id of a seeded entity (a left join on
    the small id map per column; other ids, nulls, columns and row order unchanged). A source id
    seeded twice as one kind fails the join's ``m:1`` validation instead of duplicating rows."""
    present = frame.collect_schema()
    for column, kind in ENTITY_COLUMNS.items():
        if column not in present:
            continue
        mapping = ids.filter(pl.col("kind") == kind).select(
            pl.col("source_id").alias(column), pl.col("platform_id").alias(_PLATFORM)
        )
        frame = (
            frame.join(mapping, on=column, how="left", validate="m:1", maintain_order="left")
            .with_columns(pl.coalesce(_PLATFORM, column).alias(column))
            .drop(_PLATFORM)
        )
    return frame


def without_simulated_entities(live: pl.LazyFrame, simulated: pl.LazyFrame, table: str) -> pl.LazyFrame:
    """The live rows of entity table ``table`` whose entity has no simulated row (other tables unchanged).

    A seeded entity has both: its simulated row (keyed by its platform id) and the platform's own.
    The simulated row stands for it: the seed copied the platform's facts from that row, and its
    dates (opened, joined, signed up) are the ones its simulated history agrees with, where the
    platform's say when the demo was seeded. An entity seeded from another simulation (a lake
    rebuilt with another seed) has no simulated row and keeps its live one.
    """
    key = ENTITY_KEYS.get(table)
    if key is None:
        return live
    return live.join(simulated.select(key), on=key, how="anti")
