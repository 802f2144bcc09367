"""The process layer of the online-feature cache, in columns: one float matrix per namespace.

Why columns: ``GET /v1/match`` reads 200 merchants per request, and a dict of per-entity
tuples made that a Python loop of string building, lookups and tuple copies before NumPy
saw a value (~23 % of an API worker's GIL time under load). Here a namespace (a view and
the features asked of it, :attr:`serving.online.ViewPlan.cached_as`) maps each key to a
slot of preallocated arrays, and a lookup is one pass of ``dict.get`` into an int array,
one vectorised freshness comparison and one fancy index into the values.

Slot 0 is a sentinel that is never fresh (stamp -inf, values NaN): an unknown key maps to
0, so "absent" and "too old" are the same comparison.

Threads: the event loop reads without a lock while lane threads and the refresh thread
write under :attr:`ProcessCache.lock`. A write below a namespace's capacity is done in
place, values before stamps and a new key's slot published last, so a reader sees either
the old row or the new one's stamp after its values (a row re-read while fresh may show a
mix of the two reads, each within the bound). Anything that moves slots (growth,
eviction, a sync's drop) builds a new :class:`FeatureCache` and swaps one dict entry, so a
reader holding the old object never meets a slot beyond its arrays.

Bound: at most ``max_entries`` rows across namespaces. A write that would pass it first
rebuilds every namespace keeping the most recently stamped rows, down to three quarters of
the bound, so the next quarter of new rows costs no rebuild (ties between rows read in
one batch are broken arbitrarily).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

MIN_CAPACITY = 1_024
"""Slots a namespace starts with; it doubles as it fills (one copy per doubling)."""


class FeatureCache:
    """One namespace's rows: key -> slot, and per slot its values, read-at stamp and asked flag.

    ``asked`` marks the rows requests read since the last refresh round (refresh ahead). A
    reader sets it without the lock; one set on an object just replaced, or between a
    refresh's reading and clearing of the flags, is lost, which costs that row at most its
    refresh for one round (it is then read through, or warmed, on its next miss).
    """

    __slots__ = ("asked", "keys", "read_at", "size", "slots", "values")

    def __init__(self, width: int, capacity: int) -> None:
        self.slots: dict[str, int] = {}
        self.keys: list[str] = [""]
        """The key of each slot in use (slot 0, the sentinel, has none)."""
        self.values: FloatArray = np.full((max(capacity, 1), width), np.nan)
        self.read_at: FloatArray = np.full(max(capacity, 1), -np.inf)
        self.asked: BoolArray = np.zeros(max(capacity, 1), dtype=np.bool_)
        self.size = 1
        """Slots in use, the sentinel included: the next new key takes slot ``size``."""

    @property
    def capacity(self) -> int:
        return len(self.read_at)

    @property
    def entries(self) -> int:
        return self.size - 1

    def lookup(self, keys: Sequence[str], read_after: float) -> tuple[IntArray, BoolArray]:
        """Each key's slot (0 when absent) and whether its row was read after ``read_after``."""
        slot = self.slots.get
        index = np.fromiter([slot(key, 0) for key in keys], np.intp, len(keys))
        return index, self.read_at.take(index) > read_after

    def write(self, keys: Sequence[str], rows: FloatArray, read_at: FloatArray, *, asked: bool) -> None:
        """Store distinct ``keys``' ``rows`` with their stamps, in place (the caller holds the lock
        and has made room for the new keys). ``asked`` marks them for the next refresh round;
        False leaves the marks as they are."""
        slots = [self.slots.get(key, 0) for key in keys]
        known = [i for i, slot in enumerate(slots) if slot]
        if known:
            where = np.array([slots[i] for i in known], dtype=np.intp)
            self.values[where] = rows[known]
            self.read_at[where] = read_at[known]
            if asked:
                self.asked[where] = True
        new = [i for i, slot in enumerate(slots) if not slot]
        if not new:
            return
        start, end = self.size, self.size + len(new)
        self.values[start:end] = rows[new]
        self.read_at[start:end] = read_at[new]
        self.asked[start:end] = asked
        self.keys.extend(keys[i] for i in new)
        self.size = end
        for slot, i in enumerate(new, start):  # published last: a reader finds the row complete
            self.slots[keys[i]] = slot

    def rebuilt(self, slots: IntArray, capacity: int) -> FeatureCache:
        """A new cache of these slots' rows only (in slot order), with room for ``capacity``."""
        kept = FeatureCache(self.values.shape[1], max(capacity, len(slots) + 1))
        n = len(slots)
        kept.values[1 : n + 1] = self.values[slots]
        kept.read_at[1 : n + 1] = self.read_at[slots]
        kept.asked[1 : n + 1] = self.asked[slots]
        kept.keys.extend(self.keys[slot] for slot in slots.tolist())
        kept.slots = {key: slot for slot, key in enumerate(kept.keys) if slot}
        kept.size = n + 1
        return kept

    def in_use(self) -> IntArray:
        return np.arange(1, self.size, dtype=np.intp)


class ProcessCache:
    """Every namespace's :class:`FeatureCache`, the writers' lock and the ``max_entries`` bound."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.namespaces: dict[str, FeatureCache] = {}
        """Read without the lock (one ``get`` per view per request); entries are swapped, never mutated
        beyond their capacity."""
        self.lock = threading.Lock()
        self._entries = 0

    @property
    def entries(self) -> int:
        """Rows held across namespaces (at most ``max_entries``)."""
        return self._entries

    def put(
        self, namespace: str, keys: Sequence[str], rows: FloatArray, read_at: FloatArray, *, asked: bool
    ) -> None:
        """Keep distinct ``keys``' rows (one row of ``rows`` and one stamp each), within the bound."""
        if not keys:
            return
        with self.lock:
            cache = self.namespaces.get(namespace) or FeatureCache(rows.shape[1], 0)
            new = [i for i, key in enumerate(keys) if key not in cache.slots]
            if self._entries + len(new) > self.max_entries:
                self._evict(room=min(len(new), self.max_entries))
                cache = self.namespaces.get(namespace) or cache
                new = [i for i, key in enumerate(keys) if key not in cache.slots]
                surplus = set(new[max(self.max_entries - self._entries, 0) :])
                if surplus:  # more new rows than the bound holds: keep what fits
                    chosen = [i for i in range(len(keys)) if i not in surplus]
                    keys, rows, read_at = [keys[i] for i in chosen], rows[chosen], read_at[chosen]
                    new = new[: len(new) - len(surplus)]
            if cache.size + len(new) > cache.capacity:
                cache = cache.rebuilt(cache.in_use(), self._capacity(cache.entries + len(new)))
            cache.write(keys, rows, read_at, asked=asked)
            self.namespaces[namespace] = cache
            self._entries += len(new)

    def take_due(self, namespace: str, stamped_by: float) -> list[str]:
        """The asked-for keys whose rows were stamped at or before ``stamped_by``; their marks are
        cleared (a row not asked for again drops out of the next round), the others' kept."""
        with self.lock:
            cache = self.namespaces.get(namespace)
            if cache is None:
                return []
            asked = np.flatnonzero(cache.asked[1 : cache.size]) + 1
            due = asked[cache.read_at[asked] <= stamped_by]
            cache.asked[due] = False
            return [cache.keys[slot] for slot in due.tolist()]

    def forget(self, namespaces: Iterable[str]) -> None:
        """Drop these namespaces' rows; a row marked asked stays as a never-fresh placeholder, still
        marked, so the next refresh round reads it again as it would have."""
        with self.lock:
            for namespace in namespaces:
                cache = self.namespaces.get(namespace)
                if cache is None:
                    continue
                asked = np.flatnonzero(cache.asked[1 : cache.size]) + 1
                kept = cache.rebuilt(asked, self._capacity(len(asked)))
                kept.values[1 : kept.size] = np.nan
                kept.read_at[1 : kept.size] = -np.inf
                self.namespaces[namespace] = kept
                self._entries -= cache.entries - kept.entries

    def _evict(self, room: int) -> None:
        """Rebuild every namespace keeping the newest rows, so ``room`` new ones fit with slack."""
        caches = list(self.namespaces.items())
        stamps = np.concatenate([cache.read_at[1 : cache.size] for _, cache in caches] or [np.empty(0)])
        keep = max(0, min(len(stamps), self.max_entries * 3 // 4, self.max_entries - room))
        chosen = np.zeros(len(stamps), dtype=np.bool_)
        if keep:
            chosen[np.argpartition(stamps, len(stamps) - keep)[len(stamps) - keep :]] = True
        start = 0
        for namespace, cache in caches:
            slots = np.flatnonzero(chosen[start : start + cache.entries]) + 1
            self.namespaces[namespace] = cache.rebuilt(slots, self._capacity(len(slots)))
            start += cache.entries
        self._entries = keep

    def _capacity(self, entries: int) -> int:
        """Slots for ``entries`` rows and as many again to grow into, within the bound (+ the sentinel)."""
        return min(self.max_entries, max(MIN_CAPACITY, 2 * entries)) + 1
