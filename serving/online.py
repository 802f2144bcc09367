"""Online features of a FeatureService for one request's candidates, through a read-through cache.

Why not call ``FeatureStore.get_online_features`` per request: for 200 merchants it costs
milliseconds of protobuf and pandas work, most of it re-reading rows that change once per
materialisation. So each batch view of the service is read per entity key from a cache,
and only the misses go to Feast, in one call per view per request (batched).

Freshness (the stated bound): a value served was read from the Feast online store at most
``freshness_s`` seconds before (wall clock, stamped when read, also across processes when
the Redis layer is on). A newer materialisation is therefore visible within ``freshness_s``;
:meth:`OnlineFeatures.sync` drops a view's entries as soon as it sees that view materialised
again, which the runtime calls on its poll, usually well before the bound.

Refresh ahead (:meth:`OnlineFeatures.refresh_hot`, run by the runtime every quarter of the
bound): the entities requests read since the last round, once their rows are half the bound
old, are re-read from Feast in large batches and stamped anew, off the request path. So a
merchant that is asked for keeps being a cache hit, and requests go to Feast only for one
they have not asked for lately. The bound above still holds: a row is served only while its
stamp is younger than ``freshness_s``; the refresh only renews stamps by reading again.

Warm behind a miss (:meth:`OnlineFeatures.warm_missed`, run by the runtime a few times a
second): a cached-only read that is refused (:class:`NotCached`) notes the rows it lacked,
and they are read in batches off the request path, so the next request finds them even
when this one was shed instead of reading them.

Layers: this process's columnar cache (:mod:`serving.feature_cache`: bounded, keeping the
most recently read rows), then Redis when a URL is given (shared by every API pod: one
pod's miss warms the others), then Feast. Missing entities are cached too (as NaN rows) so
an unknown merchant can't make every request go to the store.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from serving import metrics
from serving.feature_cache import FeatureCache, ProcessCache

FloatArray = npt.NDArray[np.float64]
Vector = tuple[float, ...]
"""One entity's features in the view's order as Redis holds them; a missing value is NaN."""
Columns = dict[str, FloatArray]
MAX_MISSED = 50_000
"""Rows noted for :meth:`OnlineFeatures.warm_missed` at most between two calls (a flood of
unknown keys must not grow memory without bound)."""


class FeaturesUnavailable(RuntimeError):
    """The online store (or its registry) could not answer."""


class NotCached(LookupError):
    """A cached-only read met a row the process cache does not hold fresh: nothing was read
    from Redis or Feast, so the caller can retry where I/O is allowed."""


@dataclass(frozen=True)
class ViewPlan:
    """One batch view of a service: which join key addresses it and which features it gives."""

    view: str
    join_key: str
    features: tuple[str, ...]

    @functools.cached_property
    def cached_as(self) -> str:
        """The cache namespace: the view *and* the features asked of it, since two services may
        project different features of one view (``ranker_v1`` reads five of ``merchant_stats``,
        ``fraud_v1`` two) and a cached vector only fits the projection it was read for."""
        return f"{self.view}:{zlib.crc32(','.join(self.features).encode()):08x}"


@dataclass(frozen=True)
class ServicePlan:
    name: str
    views: tuple[ViewPlan, ...]

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(f for view in self.views for f in view.features)


class SharedCache(Protocol):
    """A cross-process cache of feature vectors (Redis in production)."""

    def get_many(self, keys: Sequence[str]) -> list[tuple[float, Vector] | None]: ...

    def set_many(self, items: Mapping[str, tuple[float, Vector]], ttl_s: float) -> None: ...


class RedisCache:
    """Feature vectors in Redis as JSON ``[read_at, [values...]]`` with an expiry of the freshness bound."""

    def __init__(self, url: str, prefix: str = "nearx:features:") -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=0.05, socket_connect_timeout=0.05)
        self.prefix = prefix

    def get_many(self, keys: Sequence[str]) -> list[tuple[float, Vector] | None]:
        raw = self._redis.mget([self.prefix + k for k in keys])
        out: list[tuple[float, Vector] | None] = []
        for item in raw:
            if item is None:
                out.append(None)
                continue
            read_at, values = json.loads(item)
            out.append((float(read_at), tuple(values)))
        return out

    def set_many(self, items: Mapping[str, tuple[float, Vector]], ttl_s: float) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for key, (read_at, values) in items.items():
            pipe.set(self.prefix + key, json.dumps([read_at, list(values)]), px=max(1, int(ttl_s * 1000)))
        pipe.execute()

    def clear(self) -> None:
        for key in self._redis.scan_iter(match=self.prefix + "*", count=1000):
            self._redis.delete(key)


class OnlineFeatures:
    """Batched, cached online retrieval of a FeatureService's batch views."""

    def __init__(
        self,
        store: Any,
        *,
        freshness_s: float = 60.0,
        shared: SharedCache | None = None,
        max_entries: int = 500_000,
        clock: Callable[[], float] = time.time,
        refresh_ahead: bool = False,
    ) -> None:
        """``refresh_ahead``: remember which entities requests read, for :meth:`refresh_hot`
        (the runtime turns it on with the task that calls it)."""
        self.store = store
        self.freshness_s = freshness_s
        self.shared = shared
        self.clock = clock
        self.refresh_ahead = refresh_ahead
        self._cache = ProcessCache(max_entries)
        self._plans: dict[str, ServicePlan] = {}
        self._views: dict[str, ViewPlan] = {}
        """Each cache namespace's view, for the rounds that re-read rows by namespace."""
        self._materialized: dict[str, Any] = {}
        self._missed: dict[ViewPlan, dict[str, None]] = {}
        """Per view, the keys cached-only reads were refused since :meth:`warm_missed` last ran."""
        self._missed_count = 0
        self._missed_lock = threading.Lock()
        """Not the cache's lock: the event loop takes this one, and must never wait on a rebuild."""

    @property
    def entries(self) -> int:
        """Rows held in the process cache (at most ``max_entries``)."""
        return self._cache.entries

    @property
    def missed(self) -> int:
        """Rows refused to cached-only reads and waiting for :meth:`warm_missed`."""
        return self._missed_count

    def plan(self, service_name: str) -> ServicePlan:
        """The batch views and features of a service, read once from the Feast registry."""
        plan = self._plans.get(service_name)
        if plan is not None:
            return plan
        try:
            service = self.store.get_feature_service(service_name)
            odfvs = {view.name for view in self.store.list_on_demand_feature_views()}
            views = []
            for projection in service.feature_view_projections:
                if projection.name in odfvs:
                    continue  # request-time features: the scorer computes them from the request
                view = self.store.get_feature_view(projection.name)
                (join_key,) = view.join_keys
                views.append(ViewPlan(projection.name, join_key, tuple(f.name for f in projection.features)))
        except Exception as exc:
            raise FeaturesUnavailable(f"feature service {service_name}: {exc}") from exc
        plan = ServicePlan(service_name, tuple(views))
        for view_plan in plan.views:
            self._views[view_plan.cached_as] = view_plan
        self._plans[service_name] = plan
        return plan

    def get(
        self, service_name: str, keys: Mapping[str, Sequence[str]], *, cached_only: bool = False
    ) -> Columns:
        """Feature columns (float64, NaN when unknown) for rows whose join keys are given per key name.

        ``keys`` maps a join key to one value per row (``{"merchant_id": [...200...],
        "customer_id": [c] * 200}``); each view reads each distinct key once. ``cached_only``:
        answer from this process's cache or raise :class:`NotCached`, never doing I/O (so the
        caller may run on the event loop); the rows it lacked, in every view, are remembered
        for :meth:`warm_missed`.
        """
        plan = self.plan(service_name)
        now = self.clock()
        missed: dict[ViewPlan, list[str]] | None = {} if cached_only else None
        columns: Columns = {}
        for view in plan.views:
            values = keys.get(view.join_key)
            if values is None:
                raise KeyError(f"{service_name} needs the join key {view.join_key!r}")
            rows = self._rows(view, values, now, missed)
            if rows is not None:
                columns.update(zip(view.features, rows.T, strict=True))  # row i of rows.T is column i
        if missed:
            self._note_missed(missed)
            n = sum(len(keys) for keys in missed.values())
            raise NotCached(f"{n} rows of {', '.join(v.view for v in missed)} are not in the process cache")
        return columns

    def warm_up(self, service_name: str) -> None:
        """One throwaway store read per batch view of the service, past the cache and into no cache.

        Feast's first ``get_online_features`` costs 100-240 ms (0.67 imports every online-store
        module to check for versioned reads); later ones about 1 ms. The runtime calls this in
        its poller before it serves these features, so no request pays that within its budget.
        """
        for view in self.plan(service_name).views:
            self._from_store(view, [""])
            metrics.WARM_UPS.labels("view", view.view).inc()

    def _rows(
        self, view: ViewPlan, values: Sequence[str], now: float, missed: dict[ViewPlan, list[str]] | None
    ) -> FloatArray | None:
        """The view's rows for ``values``, one per value (NaN when unknown), reading what the process
        lacks; a cached-only read (``missed`` given) puts what it lacks there and returns None."""
        cache = self._cache.namespaces.get(view.cached_as) or FeatureCache(len(view.features), 0)
        index, fresh = cache.lookup(values, now - self.freshness_s)
        if fresh.all():  # the warm path: no Python loop but the lookup's
            if self.refresh_ahead:
                cache.asked[index] = True
            _counter(view.view, "process").inc(len(set(values)))
            return cache.values.take(index, axis=0)  # a quarter of fancy indexing's cost
        stale = np.flatnonzero(~fresh).tolist()
        missing = list(dict.fromkeys([values[i] for i in stale]))
        if missed is not None:
            missed[view] = missing
            return None
        rows = cache.values.take(index, axis=0)
        if self.refresh_ahead:
            cache.asked[index[fresh]] = True
        _counter(view.view, "process").inc(len(set(values)) - len(missing))
        fetched = self._fill(view, missing, now)
        at = {key: i for i, key in enumerate(missing)}
        rows[stale] = fetched[[at[values[i]] for i in stale]]
        return rows

    def _fill(self, view: ViewPlan, keys: list[str], now: float) -> FloatArray:
        """Distinct ``keys``' rows (in order) from Redis while fresh there, else read from Feast,
        and kept in the process cache."""
        found: dict[str, FloatArray] = {}
        still = keys if self.shared is None else self._from_shared(view, keys, now, found)
        if still:
            fetched = self._read_through(view, still, now, asked=self.refresh_ahead)
            _counter(view.view, "store").inc(len(still))
            if still is keys:
                return fetched
            found.update(zip(still, fetched, strict=True))
        return np.array([found[key] for key in keys], dtype=np.float64)

    def _read_through(self, view: ViewPlan, keys: list[str], now: float, *, asked: bool) -> FloatArray:
        """Read ``keys`` from Feast, stamp them ``now`` and keep them in the cache layers."""
        rows = self._from_store(view, keys)
        self._cache.put(view.cached_as, keys, rows, np.full(len(keys), now), asked=asked)
        if self.shared is not None:
            self._to_shared(view, keys, rows, now)
        return rows

    def refresh_hot(self, batch: int = 1_000) -> int:
        """Re-read the rows requests asked for since the last round once they are half the bound
        old, ``batch`` entities per Feast call; the number of rows re-read.

        A row not yet due is kept for the next round; one not asked for again drops out after
        its refresh, so the work follows what requests read, not the whole store.
        """
        refreshed = 0
        for namespace, view in list(self._views.items()):
            due = self._cache.take_due(namespace, self.clock() - self.freshness_s / 2)
            for start in range(0, len(due), batch):
                self._read_through(view, due[start : start + batch], self.clock(), asked=False)
            _counter(view.view, "refresh").inc(len(due))
            refreshed += len(due)
        return refreshed

    def warm_missed(self, batch: int = 1_000) -> int:
        """Read the rows cached-only reads were refused since the last call (those still not fresh),
        ``batch`` entities per call, as a request's miss would; the number of rows read.

        Why: under load the scoring lane sheds the requests that must read a row, so without this
        a cold process stays cold (each shed request is shed again next time); with it, a shed
        request still warms its rows for the next one.
        """
        with self._missed_lock:
            missed, self._missed, self._missed_count = self._missed, {}, 0
        warmed = 0
        for view, keys in missed.items():
            pending = list(keys)
            cache = self._cache.namespaces.get(view.cached_as)
            if cache is not None:  # read since (by the lane, or a refresh): not again
                _, fresh = cache.lookup(pending, self.clock() - self.freshness_s)
                pending = [key for key, ok in zip(pending, fresh.tolist(), strict=True) if not ok]
            for start in range(0, len(pending), batch):
                self._fill(view, pending[start : start + batch], self.clock())
            warmed += len(pending)
        return warmed

    def _note_missed(self, missed: Mapping[ViewPlan, list[str]]) -> None:
        with self._missed_lock:
            for view, keys in missed.items():
                room = MAX_MISSED - self._missed_count
                if room <= 0:  # a flood of misses: the rest are noted again on their next miss
                    return
                pending = self._missed.setdefault(view, {})
                before = len(pending)
                pending.update(dict.fromkeys(keys[:room]))
                self._missed_count += len(pending) - before

    def _from_shared(
        self, view: ViewPlan, keys: list[str], now: float, found: dict[str, FloatArray]
    ) -> list[str]:
        """Put in ``found`` the rows Redis holds fresh (kept here too, with their stamps); the others."""
        assert self.shared is not None
        try:
            entries = self.shared.get_many([self._shared_key(view, k) for k in keys])
        except Exception:  # a Redis outage costs speed, never answers: fall through to Feast
            _counter(view.view, "shared_error").inc(len(keys))
            return keys
        still: list[str] = []
        hits: list[str] = []
        stamps: list[float] = []
        vectors: list[Vector] = []
        for key, entry in zip(keys, entries, strict=True):
            if entry is not None and now - entry[0] < self.freshness_s:
                hits.append(key)
                stamps.append(entry[0])
                vectors.append(entry[1])
            else:
                still.append(key)
        if hits:
            rows = np.array(vectors, dtype=np.float64).reshape(len(hits), len(view.features))
            self._cache.put(view.cached_as, hits, rows, np.array(stamps), asked=self.refresh_ahead)
            found.update(zip(hits, rows, strict=True))
        _counter(view.view, "shared").inc(len(hits))
        return still

    def _to_shared(self, view: ViewPlan, keys: list[str], rows: FloatArray, now: float) -> None:
        assert self.shared is not None
        items = {
            self._shared_key(view, k): (now, tuple(row)) for k, row in zip(keys, rows.tolist(), strict=True)
        }
        try:
            self.shared.set_many(items, self.freshness_s)
        except Exception:  # the answer is already in hand; a Redis outage only costs the next pod a read
            _counter(view.view, "shared_error").inc(len(items))

    def _shared_key(self, view: ViewPlan, key: str) -> str:
        """Keyed by the view's last materialisation seen, so a new one never reads older entries."""
        return f"{view.cached_as}:{self._materialized.get(view.view)}:{key}"

    def _from_store(self, view: ViewPlan, keys: list[str]) -> FloatArray:
        """``keys``' rows as read from Feast, one per key (NaN where Feast has no value)."""
        refs = [f"{view.view}:{feature}" for feature in view.features]
        try:
            response = self.store.get_online_features(
                features=refs, entity_rows=[{view.join_key: key} for key in keys]
            ).to_dict()
        except Exception as exc:
            raise FeaturesUnavailable(f"online store ({view.view}): {exc}") from exc
        columns = np.array([response[feature] for feature in view.features], dtype=np.float64)  # None: NaN
        return columns.T.reshape(len(keys), len(view.features))

    def sync(self) -> list[str]:
        """Drop cached entries of every view materialised since the last call; the views dropped.

        Reads the views' materialisation intervals from the Feast registry (refreshed), so a
        ``feast materialize`` by the pipelines is picked up on the next poll. Rows requests
        asked for stay marked, so the next refresh round reads them again.
        """
        try:
            self.store.refresh_registry()
            views = self.store.list_feature_views()
        except Exception as exc:
            raise FeaturesUnavailable(f"feature registry: {exc}") from exc
        dropped = []
        for view in views:
            mark = view.materialization_intervals[-1][1] if view.materialization_intervals else None
            if view.name in self._materialized and self._materialized[view.name] != mark:
                dropped.append(view.name)
            self._materialized[view.name] = mark
        if dropped:
            self._cache.forget(ns for ns, view in list(self._views.items()) if view.view in dropped)
        return dropped


@functools.cache
def _counter(view: str, source: str) -> Any:
    """``FEATURE_LOOKUPS``' child for a view and source, looked up once (``labels`` takes a lock and
    builds a key: microseconds a request on the warm path)."""
    return metrics.FEATURE_LOOKUPS.labels(view, source)
