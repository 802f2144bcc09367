"""Online features through a FeatureService: same values as Feast, batched, cached within the bound."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from feast import FeatureStore

from serving import metrics
from serving.online import FeaturesUnavailable, NotCached, OnlineFeatures, RedisCache
from tests.serving.conftest import merchant_feature_rows, open_feature_store

SERVICE_FEATURES = ("merchant_orders_28d", "merchant_rating_28d", "customer_eco_share")


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
