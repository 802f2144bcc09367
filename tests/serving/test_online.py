"""Online features through a FeatureService: same values as Feast, batched, cached within the bound."""

from __future__ import annotations

import os
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from feast import FeatureStore

from features.store import apply_repo
from features.views import customer_stats
from serving import metrics
from serving.feature_cache import ProcessCache
from serving.online import FeaturesUnavailable, NotCached, OnlineFeatures, RedisCache
from tests.serving.conftest import merchant_feature_rows, open_feature_store

SERVICE_FEATURES = ("merchant_orders_28d", "merchant_rating_28d", "customer_eco_share")
CUSTOMER_FEATURES = tuple(field.name for field in customer_stats.schema)


def _keys(n: int) -> dict[str, list[str]]:
    return {"merchant_id": [f"m{i}" for i in range(n)] + ["unknown"], "customer_id": ["c1"] * (n + 1)}


def _lookups(view: str, source: str) -> float:
    return float(metrics.FEATURE_LOOKUPS.labels(view, source)._value.get())


def test_values_equal_feasts_own_online_retrieval(feature_store: FeatureStore) -> None:
    online = OnlineFeatures(feature_store)
    keys = _keys(200)
    columns = online.get("ranker_v1", keys)
    rows = [
        {"merchant_id": m, "customer_id": c}
        for m, c in zip(keys["merchant_id"], keys["customer_id"], strict=True)
    ]
    expected = feature_store.get_online_features(
        features=feature_store.get_feature_service("ranker_v1"), entity_rows=rows
    ).to_dict()
    for name in SERVICE_FEATURES:
        want = np.array([np.nan if v is None else v for v in expected[name]], dtype=np.float64)
        np.testing.assert_array_equal(columns[name], want)
    assert np.isnan(columns["merchant_rating_28d"][-1])  # unknown merchant: NaN, not an error
    assert set(columns) == set(online.plan("ranker_v1").features)


def test_services_projecting_different_features_of_one_view_never_share_a_cached_vector(
    feature_store: FeatureStore,
) -> None:
    """ranker_v1 reads five merchant_stats features, fraud_v1 two and eta_v1 three, of the same rows."""
    online = OnlineFeatures(feature_store)
    keys = {"merchant_id": ["m1", "m2"], "customer_id": ["c1", "c1"], "merchant_hour": ["", ""]}
    keys |= {"courier_id": ["", ""], "cell_hour": ["", ""]}
    ranker = online.get("ranker_v1", keys)
    fraud = online.get("fraud_v1", keys)  # the same merchants, now from the cache of another projection
    eta = online.get("eta_v1", keys)
    rows = feature_store.get_online_features(
        features=["merchant_stats:merchant_orders_28d", "merchant_stats:merchant_cancel_rate"],
        entity_rows=[{"merchant_id": "m1"}, {"merchant_id": "m2"}],
    ).to_dict()
    for columns in (ranker, fraud, eta):
        np.testing.assert_array_equal(columns["merchant_orders_28d"], rows["merchant_orders_28d"])
    np.testing.assert_array_equal(fraud["merchant_cancel_rate"], rows["merchant_cancel_rate"])


def test_a_second_request_is_served_from_the_cache_until_the_freshness_bound(
    feature_store: FeatureStore,
) -> None:
    now = [1_000.0]
    online = OnlineFeatures(feature_store, freshness_s=60, clock=lambda: now[0])
    keys = {"merchant_id": ["m1", "m2", "m1"], "customer_id": ["c1"] * 3}
    first = online.get("ranker_v1", keys)
    from_store = _lookups("merchant_stats", "store")
    second = online.get("ranker_v1", keys)
    assert _lookups("merchant_stats", "store") == from_store  # nothing re-read
    np.testing.assert_array_equal(first["merchant_rating_28d"], second["merchant_rating_28d"])
    assert first["merchant_rating_28d"][0] == first["merchant_rating_28d"][2]

    changed = merchant_feature_rows(["m1", "m2"], seed=99)
    feature_store.write_to_online_store("merchant_stats", changed)
    try:
        now[0] += 59.0
        assert online.get("ranker_v1", keys)["merchant_rating_28d"][0] == first["merchant_rating_28d"][0]
        now[0] += 2.0  # past the bound: the new materialisation is what is served
        fresh = online.get("ranker_v1", keys)
        assert fresh["merchant_rating_28d"][0] == pytest.approx(changed["merchant_rating_28d"][0])
        assert _lookups("merchant_stats", "store") == from_store + 2
    finally:
        feature_store.write_to_online_store(
            "merchant_stats", merchant_feature_rows([f"m{i}" for i in range(300)])
        )


def test_refresh_ahead_keeps_what_requests_read_fresh_without_their_reading_feast(
    feature_store: FeatureStore,
) -> None:
    now = [5_000.0]
    online = OnlineFeatures(feature_store, freshness_s=60, clock=lambda: now[0], refresh_ahead=True)
    keys = {"merchant_id": ["m1", "m2", "m3"], "customer_id": ["c1"] * 3}
    online.get("ranker_v1", keys)
    now[0] += 10.0
    assert online.refresh_hot() == 0  # younger than half the bound: kept for the next round
    changed = merchant_feature_rows(["m1", "m2", "m3"], seed=98)
    feature_store.write_to_online_store("merchant_stats", changed)
    try:
        now[0] += 25.0  # 35 s old: due
        assert online.refresh_hot() == 4  # three merchants and the customer, re-read and stamped anew
        from_store = _lookups("merchant_stats", "store")
        now[0] += 50.0  # 85 s after the requests' read, 50 s after the refresh: within the bound
        served = online.get("ranker_v1", keys)
        assert _lookups("merchant_stats", "store") == from_store  # no request read Feast
        np.testing.assert_allclose(served["merchant_rating_28d"], changed["merchant_rating_28d"])
        now[0] += 40.0
        assert online.refresh_hot() == 4  # asked for again, so refreshed again
        assert online.refresh_hot() == 0  # and nothing asked since: the work follows the requests
    finally:
        feature_store.write_to_online_store(
            "merchant_stats", merchant_feature_rows([f"m{i}" for i in range(300)])
        )


def test_without_refresh_ahead_nothing_is_remembered_or_refreshed(feature_store: FeatureStore) -> None:
    online = OnlineFeatures(feature_store, freshness_s=0.0)
    online.get("ranker_v1", _keys(5))
    assert online.refresh_hot() == 0


def test_a_missing_join_key_is_a_caller_error(feature_store: FeatureStore) -> None:
    with pytest.raises(KeyError, match="customer_id"):
        OnlineFeatures(feature_store).get("ranker_v1", {"merchant_id": ["m1"]})


def test_an_online_store_that_is_down_is_reported_as_unavailable(
    feature_store: FeatureStore, tmp_path: Path
) -> None:
    store = open_feature_store(tmp_path, online="redis", online_url="redis://127.0.0.1:1/0")
    store.apply(
        [
            *feature_store.list_entities(),
            *feature_store.list_feature_views(),
            *feature_store.list_feature_services(),
        ]
    )
    with pytest.raises(FeaturesUnavailable, match="online store"):
        OnlineFeatures(store).get("ranker_v1", _keys(3))


@pytest.mark.redis
@pytest.mark.skipif(not os.environ.get("NEARX_TEST_REDIS_URL"), reason="NEARX_TEST_REDIS_URL is not set")
def test_redis_layer_shares_reads_between_processes_within_the_bound(feature_store: FeatureStore) -> None:
    url = os.environ["NEARX_TEST_REDIS_URL"]
    shared = RedisCache(url, prefix=f"nearx:test:{os.getpid()}:")
    try:
        first_pod = OnlineFeatures(feature_store, shared=shared)
        second_pod = OnlineFeatures(feature_store, shared=RedisCache(url, prefix=shared.prefix))
        keys = {"merchant_id": ["m5", "m6"], "customer_id": ["c1", "c1"]}
        expected = first_pod.get("ranker_v1", keys)
        from_store, from_shared = _lookups("merchant_stats", "store"), _lookups("merchant_stats", "shared")
        got = second_pod.get("ranker_v1", keys)
        np.testing.assert_array_equal(got["merchant_rating_28d"], expected["merchant_rating_28d"])
        assert _lookups("merchant_stats", "store") == from_store
        assert _lookups("merchant_stats", "shared") == from_shared + 2
        stale = OnlineFeatures(feature_store, shared=shared, clock=lambda: 10**12)  # far beyond the bound
        stale.get("ranker_v1", keys)
        assert _lookups("merchant_stats", "store") == from_store + 2
    finally:
        shared.clear()


def test_a_cached_only_read_answers_from_the_process_or_refuses_without_reading(
    feature_store: FeatureStore,
) -> None:
    now = [9_000.0]
    online = OnlineFeatures(feature_store, freshness_s=60, clock=lambda: now[0])
    keys = {"merchant_id": ["m3", "m4"], "customer_id": ["c1"] * 2}
    from_store = _lookups("merchant_stats", "store")
    with pytest.raises(NotCached):
        online.get("ranker_v1", keys, cached_only=True)
    assert _lookups("merchant_stats", "store") == from_store  # refused before any read
    read = online.get("ranker_v1", keys)
    cached = online.get("ranker_v1", keys, cached_only=True)
    np.testing.assert_array_equal(read["merchant_rating_28d"], cached["merchant_rating_28d"])
    now[0] += 61.0  # past the freshness bound the cache no longer answers
    with pytest.raises(NotCached):
        online.get("ranker_v1", keys, cached_only=True)


def _customer_rows(ids: list[str], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"customer_id": ids, "event_timestamp": [pd.Timestamp.now(tz="UTC")] * len(ids)})
    for name in CUSTOMER_FEATURES:
        frame[name] = rng.uniform(0, 10, len(ids))
    return frame


def _feast(store: FeatureStore, service: str, keys: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Feast's own answer for the service, row for row, nulls as NaN."""
    rows = [dict(zip(keys, values, strict=True)) for values in zip(*keys.values(), strict=True)]
    answer = store.get_online_features(
        features=store.get_feature_service(service), entity_rows=rows
    ).to_dict()
    return {name: np.array(answer[name], dtype=np.float64) for name in answer if name not in keys}


def test_cold_warm_and_mixed_reads_give_feasts_rows_for_repeated_and_unknown_keys(
    feature_store: FeatureStore,
) -> None:
    feature_store.write_to_online_store("customer_stats", _customer_rows(["c1", "c2"]))
    online = OnlineFeatures(feature_store)
    keys = {
        "merchant_id": ["m1", "m2", "m1", "nobody", "m3", "nobody", "m2"],
        "customer_id": ["c1", "c2", "c1", "c1", "stranger", "c2", "c1"],
    }
    expected = _feast(feature_store, "ranker_v1", keys)
    assert np.isnan(expected["merchant_rating_28d"][3])  # an unknown merchant
    assert np.isnan(expected["customer_eco_share"][4])  # and an unknown customer
    cold = online.get("ranker_v1", keys)
    warm = online.get("ranker_v1", keys, cached_only=True)
    mixed_keys = {name: [*values, *values[:2]] for name, values in keys.items()}
    mixed_keys["merchant_id"][-1] = "m250"  # one row this process has not read, among warm ones
    mixed = online.get("ranker_v1", mixed_keys)
    mixed_expected = _feast(feature_store, "ranker_v1", mixed_keys)
    assert set(cold) == set(warm) == set(expected)
    for name in expected:
        np.testing.assert_array_equal(cold[name], expected[name])
        np.testing.assert_array_equal(warm[name], expected[name])
        np.testing.assert_array_equal(mixed[name], mixed_expected[name])
        assert warm[name].dtype == np.float64


def test_a_refused_cached_only_read_is_warmed_behind_so_the_next_one_hits(
    feature_store: FeatureStore,
) -> None:
    online = OnlineFeatures(feature_store)
    keys = {"merchant_id": ["m20", "m21", "m20", "m22"], "customer_id": ["c9"] * 4}
    from_store = _lookups("merchant_stats", "store")
    with pytest.raises(NotCached):
        online.get("ranker_v1", keys, cached_only=True)
    with pytest.raises(NotCached):  # asked again before the warm: noted once
        online.get("ranker_v1", keys, cached_only=True)
    assert _lookups("merchant_stats", "store") == from_store
    assert online.missed == 4  # three merchants and the customer: every view's misses, not the first's
    assert online.warm_missed() == 4
    assert online.missed == 0
    assert _lookups("merchant_stats", "store") == from_store + 3
    warm = online.get("ranker_v1", keys, cached_only=True)
    for name, column in _feast(feature_store, "ranker_v1", keys).items():
        np.testing.assert_array_equal(warm[name], column)
    assert online.warm_missed() == 0  # nothing new was refused

    later = {"merchant_id": ["m23"], "customer_id": ["c9"]}
    with pytest.raises(NotCached):
        online.get("ranker_v1", later, cached_only=True)
    online.get("ranker_v1", later)  # the lane read it meanwhile
    assert online.warm_missed() == 0  # so the warm reads nothing again


def test_the_process_cache_keeps_its_bound_and_the_newest_rows(feature_store: FeatureStore) -> None:
    now = [100.0]
    online = OnlineFeatures(feature_store, freshness_s=1e6, max_entries=8, clock=lambda: now[0])

    def request(t: int) -> dict[str, list[str]]:  # two new merchants and a new customer each: 3 rows
        return {"merchant_id": [f"m{2 * t}", f"m{2 * t + 1}"], "customer_id": [f"c{t}"] * 2}

    for t in range(6):
        now[0] += 1.0
        answer = online.get("ranker_v1", request(t))
        assert online.entries <= 8
        for name, column in _feast(feature_store, "ranker_v1", request(t)).items():
            np.testing.assert_array_equal(answer[name], column)
        online.get("ranker_v1", request(t), cached_only=True)  # the newest rows are kept...
        if t:
            online.get("ranker_v1", request(t - 1), cached_only=True)  # ...and the ones before them
    with pytest.raises(NotCached):  # the oldest went first
        online.get("ranker_v1", request(0), cached_only=True)

    nothing = OnlineFeatures(feature_store, max_entries=0)
    from_store = _lookups("merchant_stats", "store")
    for _ in range(2):
        nothing.get("ranker_v1", request(1))
    assert nothing.entries == 0
    assert _lookups("merchant_stats", "store") == from_store + 4  # no cache: every read goes to Feast


def test_eviction_keeps_the_most_recently_stamped_rows_across_namespaces() -> None:
    cache = ProcessCache(max_entries=8)
    a_keys = [f"a{i}" for i in range(6)]
    cache.put("a", a_keys, np.arange(12.0).reshape(6, 2), np.arange(6.0), asked=False)
    cache.put("b", ["b0", "b1"], np.array([[100.0], [101.0]]), np.array([6.0, 7.0]), asked=True)
    assert cache.entries == 8
    cache.put("a", ["a6"], np.array([[12.0, 13.0]]), np.array([8.0]), asked=False)
    # over the bound: rebuilt down to 3/4 of it, the newest six (a2..a5, b0, b1), then a6
    assert cache.entries == 7
    a, b = cache.namespaces["a"], cache.namespaces["b"]
    assert set(a.slots) == {"a2", "a3", "a4", "a5", "a6"}
    assert set(b.slots) == {"b0", "b1"}
    index, fresh = a.lookup(["a0", "a3", "a6"], read_after=-1.0)
    assert fresh.tolist() == [False, True, True]
    np.testing.assert_array_equal(a.values[index[1:]], [[6.0, 7.0], [12.0, 13.0]])
    assert b.asked[1 : b.size].all()  # the marks move with the rows
    assert cache.take_due("b", stamped_by=6.0) == ["b0"]
    assert cache.take_due("b", stamped_by=7.0) == ["b1"]  # b0 was taken: it is no longer marked
    assert a.read_at[0] == -np.inf  # the sentinel stays never fresh
    assert np.isnan(a.values[0]).all()


def test_a_reader_never_sees_another_keys_row_while_writers_grow_and_evict() -> None:
    """Each key's row is fixed (its number), so any row a lookup returns as fresh must be its own.
    The interpreter switches threads every microsecond here, so reads interleave with rebuilds."""
    cache = ProcessCache(max_entries=400)
    keys = [f"k{i}" for i in range(20_000)]
    done = threading.Event()

    def write() -> None:
        for start in range(0, len(keys), 50):
            chunk = keys[start : start + 50]
            numbers = np.arange(start, start + len(chunk), dtype=np.float64)
            rows = np.column_stack([numbers, -numbers])
            cache.put("n", chunk, rows, np.full(len(chunk), float(start)), asked=True)
        done.set()

    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    writer = threading.Thread(target=write)
    try:
        writer.start()
        rng = np.random.default_rng(3)
        while not done.is_set():
            part = cache.namespaces.get("n")
            if part is None:
                continue
            asked = [keys[i] for i in rng.integers(0, len(keys), 200)]
            index, fresh = part.lookup(asked, read_after=-1.0)
            part.asked[index[fresh]] = True
            rows = part.values.take(index, axis=0)[fresh]
            want = np.array([float(key[1:]) for key, ok in zip(asked, fresh, strict=True) if ok])
            np.testing.assert_array_equal(rows[:, 0], want)
            np.testing.assert_array_equal(rows[:, 1], -want)
    finally:
        writer.join()
        sys.setswitchinterval(switching)
    assert cache.entries <= 400


def test_sync_drops_a_view_materialised_again_and_the_next_refresh_reads_its_asked_rows(
    tmp_path: Path,
) -> None:
    store = open_feature_store(tmp_path)
    apply_repo(store)
    store.write_to_online_store("merchant_stats", merchant_feature_rows(["m1", "m2", "m3"]))
    now = [1_000.0]
    online = OnlineFeatures(store, freshness_s=60, clock=lambda: now[0], refresh_ahead=True)
    assert online.sync() == []  # the first sight of each view's materialisation drops nothing
    keys = {"merchant_id": ["m1", "m2"], "customer_id": ["c1", "c1"]}
    before = online.get("ranker_v1", keys)
    assert online.sync() == []  # nothing materialised since

    changed = merchant_feature_rows(["m1", "m2"], seed=97)
    store.write_to_online_store("merchant_stats", changed)
    end = datetime.now(UTC)
    store.registry.apply_materialization(
        store.get_feature_view("merchant_stats"), store.project, end - timedelta(hours=1), end
    )
    assert online.sync() == ["merchant_stats"]
    assert online.get("ranker_v1", keys)["merchant_rating_28d"] == pytest.approx(
        changed["merchant_rating_28d"]
    )
    assert before["merchant_rating_28d"] != pytest.approx(changed["merchant_rating_28d"])

    store.registry.apply_materialization(
        store.get_feature_view("merchant_stats"), store.project, end, end + timedelta(seconds=1)
    )
    assert online.sync() == ["merchant_stats"]
    with pytest.raises(NotCached):
        online.get("ranker_v1", keys, cached_only=True)
    assert online.refresh_hot() == 2  # the two merchants asked for, read again; the customer's row was kept
    online.get("ranker_v1", keys, cached_only=True)
