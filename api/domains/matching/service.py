"""Match a customer to the live merchants around them, ranked by the serving layer.

Steps: the customer's city from the point; the ``CANDIDATE_POOL`` nearest live merchants
(of the category, if asked) within the radius from the in-memory index; keep those open
now (local time), delivering that far and matching the text query; rank them with the
matching model (or its fallback) personalised by the profile; promise P50/P90 and a green
option for the top ``limit``; log ``match.served`` (impressions with positions) so training
learns from real traffic; answer with model names and versions, or the ``degraded`` reason.

``match.served`` is the whole change a match makes, so it goes through the worker's event
buffer (:mod:`nearx.event_buffer`: written in batches within 20 ms) instead of an INSERT of
its own on this hot path; whatever reads a served match back (a click, a checkout naming it)
flushes the buffer first, so this worker never misses one it has just served.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime
from itertools import compress
from typing import Any

import numpy as np

from api.domains.matching import repository
from api.domains.matching.index import BoolArray, CityIndex, FloatArray, IndexHolder, IntArray
from api.domains.matching.schemas import (
    ClickInput,
    ClickRecorded,
    Eta,
    GreenDelivery,
    MatchContext,
    MatchPage,
    MatchResult,
    Scoring,
)
from api.domains.merchants.hours import local_time
from api.errors import InvalidInput, NotFound
from nearx.db import Connection
from nearx.event_buffer import EventBuffer
from nearx.ids import new_id
from nearx.outbox import append_event, event_row
from serving.eta import GreenOption, Promise, Trips
from serving.match import Candidates, Customer, Ranking
from serving.runtime import ScoringRuntime

CANDIDATE_POOL = 200
"""How many nearest live merchants are considered per request (then filtered and ranked)."""
NEARBY_M = 1_000
TOP_RATED = 4.5
QUICK_KITCHEN_S = 15 * 60


@dataclass(frozen=True)
class _Pool:
    positions: IntArray
    distances_m: FloatArray


async def match(
    conn: Connection,
    index: IndexHolder,
    runtime: ScoringRuntime,
    events: EventBuffer,
    *,
    user_id: uuid.UUID,
    context: MatchContext,
    now: datetime,
) -> MatchPage:
    snapshot = index.snapshot
    if context.category is not None and context.category not in snapshot.categories:
        raise InvalidInput(f"unknown category {context.category!r}: no live merchant has it")
    match_id = new_id()
    city = snapshot.city_at(context.lat, context.lng)
    city_index = snapshot.cities.get(city.id) if city else None
    prefs = await repository.preferences(conn, user_id) or {}
    customer = _customer(user_id, prefs, context, city_index, now)
    results: list[MatchResult] = []
    impressions: list[dict[str, Any]] = []
    scoring = Scoring(
        model=None,
        model_version=None,
        degraded=False,
        degraded_reason=None,
        eta_model=None,
        eta_model_version=None,
        eta_degraded_reason=None,
    )
    if city_index is not None:
        pool = _candidates(city_index, context, now)
        if pool.positions.size:
            favourites = city_index.positions_of(str(m) for m in prefs.get("favourite_merchants") or [])
            candidates = _scoring_input(city_index, pool, favourites)
            ranking = await runtime.rank(candidates, customer)
            top = ranking.order[: context.limit]
            trips = _trips(city_index, pool.positions[top], context, customer, now)
            promise, green = await _promise(runtime, city_index, trips)
            results = _results(city_index, pool, candidates, ranking, top, promise, green, customer, context)
            impressions = _impressions(results, candidates, top)
            scoring = Scoring(
                model=ranking.model,
                model_version=ranking.version,
                degraded=ranking.degraded is not None,
                degraded_reason=ranking.degraded,
                eta_model=promise.model,
                eta_model_version=promise.version,
                eta_degraded_reason=promise.degraded,
            )
    page = MatchPage(match_id=match_id, city_id=city.id if city else None, results=results, scoring=scoring)
    events.append(
        event_row(
            event_type="match.served",
            aggregate_type="match",
            aggregate_id=match_id,
            city_id=page.city_id,
            payload={
                "match_id": str(match_id),
                "customer_id": str(user_id),
                "category": context.category,
                "q": context.q,
                "local_hour": customer.local_hour,
                "model": scoring.model,
                "model_version": scoring.model_version,
                "degraded_reason": scoring.degraded_reason,
                "impressions": impressions,
            },
        )
    )
    return page


async def served_to(
    conn: Connection, match_id: uuid.UUID, user_id: uuid.UUID, events: EventBuffer | None
) -> bool:
    """Whether ``match_id`` is a match served to this customer (checkout names the one it came from)."""
    served = await _served(conn, match_id, events)
    return served is not None and served["payload"]["customer_id"] == str(user_id)


async def record_click(
    conn: Connection,
    events: EventBuffer | None,
    *,
    user_id: uuid.UUID,
    match_id: uuid.UUID,
    body: ClickInput,
) -> ClickRecorded:
    """Log a click on a served result (``match.clicked``) with the position it was shown at."""
    served = await _served(conn, match_id, events)
    if served is None or served["payload"]["customer_id"] != str(user_id):
        raise NotFound("no such match")
    shown = {i["merchant_id"]: int(i["position"]) for i in served["payload"]["impressions"]}
    position = shown.get(str(body.merchant_id))
    if position is None:
        raise InvalidInput("that merchant was not in this match")
    async with conn.transaction():
        await append_event(
            conn,
            event_type="match.clicked",
            aggregate_type="match",
            aggregate_id=match_id,
            city_id=served["city_id"],
            payload={
                "match_id": str(match_id),
                "customer_id": str(user_id),
                "merchant_id": str(body.merchant_id),
                "position": position,
            },
        )
    return ClickRecorded(match_id=match_id, merchant_id=body.merchant_id, position=position)


async def _served(conn: Connection, match_id: uuid.UUID, events: EventBuffer | None) -> dict[str, Any] | None:
    """The ``match.served`` event of a match, after this worker's buffered events are written."""
    if events is not None:
        await events.flush(conn)
    return await repository.served_match(conn, match_id)


def _customer(
    user_id: uuid.UUID, prefs: dict[str, Any], context: MatchContext, city: CityIndex | None, now: datetime
) -> Customer:
    """The profile's preferences (the request may override them) and the local hour."""
    local = local_time(now, city.city.timezone) if city else now
    return Customer(
        customer_id=str(user_id),
        eco_first=context.eco_first if context.eco_first is not None else bool(prefs.get("eco_first", False)),
        price_sensitivity=context.price_sensitivity or str(prefs.get("price_sensitivity", "medium")),
        local_hour=local.hour,
        rain=context.rain,
    )


def _candidates(city: CityIndex, context: MatchContext, now: datetime) -> _Pool:
    """The nearest live merchants that deliver this far, are not excluded, match the query and are
    open now: masks over the pool, so no Python step per candidate unless a query is given."""
    proximity = city.by_category.get(context.category) if context.category else city.everything
    if proximity is None:
        return _Pool(np.zeros(0, dtype=np.int64), np.zeros(0))
    near = proximity.nearest(context.lat, context.lng, CANDIDATE_POOL, float(context.radius_m))
    positions = np.asarray(near.ids, dtype=np.int64)
    distances = np.asarray(near.distances_m, dtype=np.float64)
    keep = distances <= city.delivery_radius_m[positions]
    if context.exclude_merchants:
        keep &= ~_among(positions, city.positions_of(str(m) for m in context.exclude_merchants))
    if context.q:
        keep &= _matches_query(city, positions, context.q.casefold())
    kept = np.flatnonzero(keep)  # hours are judged only for survivors: a cold memo costs less
    keep[kept] = city.opening.open_at(positions[kept], now)
    return _Pool(positions[keep], distances[keep])


def _matches_query(city: CityIndex, positions: IntArray, needle: str) -> BoolArray:
    """``needle`` (case-folded) in the case-folded name or in the category slug."""
    pairs = zip(city.folded_names[positions].tolist(), city.categories[positions].tolist(), strict=True)
    return np.fromiter(
        (needle in name or needle in category for name, category in pairs), np.bool_, positions.size
    )


def _among(positions: IntArray, members: IntArray) -> BoolArray:
    """Which ``positions`` are among ``members``, by binary search over the few members:
    ``np.isin`` picks a lookup table as wide as the positions' range (~50 µs at 200k merchants)."""
    if not members.size:
        return np.zeros(positions.size, dtype=np.bool_)
    members = np.sort(members)
    found: BoolArray = members[np.minimum(np.searchsorted(members, positions), members.size - 1)] == positions
    return found


def _scoring_input(city: CityIndex, pool: _Pool, favourites: IntArray) -> Candidates:
    """The ranker's columns for the pool; ``favourites`` are positions (``CityIndex.positions_of``)."""
    return Candidates(
        merchant_ids=city.ids[pool.positions].tolist(),
        distance_m=pool.distances_m,
        price_level=city.price_level[pool.positions],
        prep_estimate_s=city.prep_s[pool.positions],
        is_favourite=_among(pool.positions, favourites).astype(np.float64),
        green_possible=(pool.distances_m <= 4_000).astype(np.float64),
        eco_packaging=city.eco_packaging[pool.positions],
    )


def _trips(
    city: CityIndex,
    positions: IntArray,
    context: MatchContext,
    customer: Customer,
    now: datetime,
) -> Trips:
    n = positions.size
    local = local_time(now, city.city.timezone)
    return Trips(
        merchant_ids=city.ids[positions].tolist(),
        merchant_cells_r7=city.h3_r7[positions].tolist(),
        categories=city.categories[positions].tolist(),
        merchant_lat=city.lat[positions],
        merchant_lng=city.lng[positions],
        dropoff_lat=np.full(n, context.lat),
        dropoff_lng=np.full(n, context.lng),
        prep_s=city.prep_s[positions],
        at=now,
        local_hour=customer.local_hour,
        weekday=local.isoweekday(),
        rain=context.rain,
    )


async def _promise(runtime: ScoringRuntime, city: CityIndex, trips: Trips) -> tuple[Promise, GreenOption]:
    scorer = runtime.eta_scorer(city.city.id, city.city.timezone, city.city.country)

    def work(cached_only: bool) -> tuple[Promise, GreenOption]:
        return scorer.promise_and_green(trips, cached_only=cached_only)

    def fallback(reason: str) -> tuple[Promise, GreenOption]:
        promise = scorer.heuristic(trips, reason)
        return promise, scorer.green_heuristic(trips, promise, reason)

    return await runtime.warm_or_within_budget(work, fallback, "eta")


def _results(
    city: CityIndex,
    pool: _Pool,
    candidates: Candidates,
    ranking: Ranking,
    top: IntArray,
    promise: Promise,
    green: GreenOption,
    customer: Customer,
    context: MatchContext,
) -> list[MatchResult]:
    """The top results as shown: each column is read once (``tolist``), not a numpy scalar per field."""
    positions = pool.positions[top]
    stars = _stars(ranking.rating, top)
    greens = _green_deliveries(green)
    reasons = _reasons(candidates, top, stars, green, customer, context)
    rows = zip(
        city.uuids[positions].tolist(),
        city.names[positions].tolist(),
        city.categories[positions].tolist(),
        city.kinds[positions].tolist(),
        ranking.scores[top].tolist(),
        pool.distances_m[top].tolist(),
        city.price_level[positions].tolist(),
        stars,
        _etas(promise),
        greens,
        reasons,
        strict=True,
    )
    return [
        MatchResult(
            merchant_id=merchant_id,
            name=name,
            category=category,
            kind=kind,
            position=rank,
            score=round(score, 6),
            distance_m=round(distance),
            price_level=int(price_level),
            rating=rating,
            eta=eta,
            green_delivery=green_delivery,
            reason_codes=codes,
        )
        for rank, (
            merchant_id,
            name,
            category,
            kind,
            score,
            distance,
            price_level,
            rating,
            eta,
            green_delivery,
            codes,
        ) in enumerate(rows, start=1)
    ]


def _stars(rating: FloatArray | None, top: IntArray) -> list[float | None]:
    """The rating shown (2 decimals), ``None`` where the ranker saw none."""
    if rating is None:
        return [None] * top.size
    return [None if math.isnan(r) else round(r, 2) for r in rating[top].tolist()]


def _etas(promise: Promise) -> list[Eta]:
    return [
        Eta(p50_s=round(p50), p90_s=round(p90))
        for p50, p90 in zip(promise.p50_s.tolist(), promise.p90_s.tolist(), strict=True)
    ]


def _green_deliveries(green: GreenOption) -> list[GreenDelivery]:
    mode = str(green.mode)
    return [
        GreenDelivery(
            available=available,
            mode=mode,
            kg_co2e=round(kg, 4),
            saving_kg_co2e=round(saving, 4),
            p_on_time=round(p_on_time, 3),
        )
        for available, kg, saving, p_on_time in zip(
            green.available.astype(np.bool_).tolist(),
            green.kg_co2e.tolist(),
            green.saving_kg_co2e.tolist(),
            green.p_on_time.tolist(),
            strict=True,
        )
    ]


def _impressions(results: list[MatchResult], candidates: Candidates, top: IntArray) -> list[dict[str, Any]]:
    """What each result was shown with, for ``match.served``: the ranker's inputs that the live
    lake keeps per impression (``pipelines/live.py``), so training sees what the customer saw.
    ``price_level`` is the index's 1-4 quartile within the city."""
    eco: list[bool | None] = (
        [None] * top.size
        if candidates.eco_packaging is None
        else candidates.eco_packaging[top].astype(np.bool_).tolist()
    )
    favourite = candidates.is_favourite[top].astype(np.bool_).tolist()
    return [
        {
            "merchant_id": str(result.merchant_id),
            "position": result.position,
            "score": result.score,
            "distance_m": result.distance_m,
            "price_level": result.price_level,
            "rating": result.rating,
            "eco_packaging": eco_packaging,
            "is_favourite": is_favourite,
        }
        for result, eco_packaging, is_favourite in zip(results, eco, favourite, strict=True)
    ]


def _reasons(
    candidates: Candidates,
    top: IntArray,
    stars: list[float | None],
    green: GreenOption,
    customer: Customer,
    context: MatchContext,
) -> list[list[str]]:
    """Why each result is here, from what the ranker saw (stable codes clients can localise).

    Plain Python over the columns' lists: numpy's per-call overhead exceeds the work at 20 rows."""
    codes = (
        "favourite",
        "matches_query",
        "nearby",
        "top_rated",
        "quick_kitchen",
        "eco_first_green_delivery" if customer.eco_first else "green_delivery",
        "fits_budget",
    )
    query, budget = bool(context.q), customer.price_sensitivity == "high"
    rows = zip(
        candidates.is_favourite[top].tolist(),
        candidates.distance_m[top].tolist(),
        stars,
        candidates.prep_estimate_s[top].tolist(),
        green.available.tolist(),
        candidates.price_level[top].tolist(),
        strict=True,
    )
    flags = (
        (
            favourite,
            query,
            distance <= NEARBY_M,
            rating is not None and rating >= TOP_RATED,
            prep <= QUICK_KITCHEN_S,
            available,
            budget and price <= 2,
        )
        for favourite, distance, rating, prep, available, price in rows
    )
    return [list(compress(codes, row)) or ["open_nearby"] for row in flags]
