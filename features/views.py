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
from features.transforms.context import ORDER_CONTEXT_FEATURES

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
    schema=_floats(*ORDER_CONTEXT_FEATURES),
    mode="pandas",
    description="Request-time context of an order: straight-line distance, hour, weekday and weather.",
)
def order_context(request: pd.DataFrame) -> pd.DataFrame:
    """Computed at request time (and the same way in training): haversine metres and cyclic hour.

    The arithmetic is :func:`features.transforms.context.order_context_columns`, which serving
    also calls on its column arrays: one definition. Feast stores this function's source and
    re-runs it elsewhere, so it imports what it uses inside its body.
    """
    import pandas as pd

    from features.transforms.context import order_context_columns

    return pd.DataFrame(order_context_columns(request), index=request.index)
