"""Feast feature views (28- and 90-day trailing windows) and the on-demand order context.

The schemas here are the contract: ``tests/features`` checks that every transform
writes exactly these columns, and the FeatureServices in ``features.services`` pick
from these views, so training (historical retrieval) and serving (online retrieval)
share one list of features.
"""

from datetime import timedelta

import pandas as pd  # type: ignore[import-untyped]
from feast import FeatureView, Field, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, String

from features import entities, sources

WINDOW_TTL = timedelta(days=28)


def _floats(*names: str) -> list[Field]:
    return [Field(name=name, dtype=Float64) for name in names]


merchant_stats = FeatureView(
    name="merchant_stats",
    entities=[entities.merchant],
    ttl=WINDOW_TTL,
    schema=_floats(
        "merchant_orders_28d",
        "merchant_acceptance_rate",
        "merchant_cancel_rate",
        "merchant_prep_p50_s",
        "merchant_prep_p90_s",
        "merchant_on_time_rate",
        "merchant_rating_28d",
        "merchant_reviews_28d",
    ),
    source=sources.merchant_stats_source,
    online=True,
    description="Kitchen speed, acceptance, cancellation, rating and volume over 28 days.",
)
merchant_hour_stats = FeatureView(
    name="merchant_hour_stats",
    entities=[entities.merchant_hour],
    ttl=WINDOW_TTL,
    schema=_floats("merchant_hour_prep_p50_s", "merchant_hour_load", "merchant_hour_orders_28d"),
    source=sources.merchant_hour_stats_source,
    online=True,
    description="A merchant's load and kitchen speed at this local hour, over 28 days.",
)
courier_stats = FeatureView(
    name="courier_stats",
    entities=[entities.courier],
    ttl=WINDOW_TTL,
    schema=[
        *_floats(
            "courier_speed_kmh", "courier_on_time_rate", "courier_acceptance_rate", "courier_deliveries_28d"
        ),
        Field(name="courier_mode", dtype=String),
    ],
    source=sources.courier_stats_source,
    online=True,
    description="Speed (in the courier's mode), punctuality and acceptance over 28 days.",
)
customer_stats = FeatureView(
    name="customer_stats",
    entities=[entities.customer],
    ttl=timedelta(days=90),
    schema=_floats(
        "customer_orders_90d",
        "customer_basket_mean_minor",
        "customer_refund_rate",
        "customer_devices_seen",
        "customer_cards_seen",
        "customer_eco_share",
        "customer_price_level_mean",
        "customer_tenure_days",
    ),
    source=sources.customer_stats_source,
    online=True,
    description="Tenure, basket, refunds, devices and cards seen, and taste over 90 days.",
)
cell_hour_stats = FeatureView(
    name="cell_hour_stats",
    entities=[entities.cell_hour],
    ttl=WINDOW_TTL,
    schema=_floats("cell_demand_28d", "cell_supply_28d", "cell_congestion", "cell_s_per_m"),
    source=sources.cell_hour_stats_source,
    online=True,
    description="Demand, courier supply and congestion of an H3 r7 cell at this local hour, over 28 days.",
)

BATCH_VIEWS = [merchant_stats, merchant_hour_stats, courier_stats, customer_stats, cell_hour_stats]

order_request = RequestSource(
    name="order_request",
    schema=[
        Field(name="merchant_lat", dtype=Float64),
        Field(name="merchant_lng", dtype=Float64),
        Field(name="dropoff_lat", dtype=Float64),
        Field(name="dropoff_lng", dtype=Float64),
        Field(name="local_hour", dtype=Int64),
        Field(name="weekday", dtype=Int64),
        Field(name="rain", dtype=Int64),
    ],
)


@on_demand_feature_view(  # type: ignore[untyped-decorator]
    sources=[order_request],
    schema=_floats("straight_m", "hour_sin", "hour_cos", "is_peak", "is_weekend", "rain_flag"),
    mode="pandas",
    description="Request-time context of an order: straight-line distance, hour, weekday and weather.",
)
def order_context(request: pd.DataFrame) -> pd.DataFrame:
    """Computed at request time (and the same way in training): haversine metres and cyclic hour.

    Feast stores this function's source and re-runs it elsewhere, so it imports and
    defines everything it uses inside its body.
    """
    import numpy as np
    import pandas as pd

    earth_radius_m = 6_371_008.8
    peak_hours = (12, 13, 18, 19, 20)
    lat1, lat2 = np.radians(request["merchant_lat"]), np.radians(request["dropoff_lat"])
    dlng = np.radians(request["dropoff_lng"] - request["merchant_lng"])
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin(dlng / 2) ** 2
    hour = request["local_hour"].astype(float)
    out = pd.DataFrame(index=request.index)
    out["straight_m"] = 2 * earth_radius_m * np.arcsin(np.sqrt(np.minimum(h, 1.0)))
    out["hour_sin"] = np.sin(2 * np.pi * hour / 24)
    out["hour_cos"] = np.cos(2 * np.pi * hour / 24)
    out["is_peak"] = request["local_hour"].isin(peak_hours).astype(float)
    out["is_weekend"] = request["weekday"].isin((6, 7)).astype(float)
    out["rain_flag"] = request["rain"].astype(float)
    return out
