"""Versioned FeatureServices: one per model, the contract shared by training and serving.

A model records the service name it was trained with (``ranker_v1`` ...). Changing
what a model sees means a new service (``eta_v2``), never an edit of a published one,
so a registered model and the online features it is served always agree.
"""

from feast import FeatureService

from features import views

ranker_v1 = FeatureService(
    name="ranker_v1",
    features=[
        views.merchant_stats[
            [
                "merchant_orders_28d",
                "merchant_cancel_rate",
                "merchant_prep_p50_s",
                "merchant_rating_28d",
                "merchant_on_time_rate",
            ]
        ],
        views.customer_stats[
            ["customer_orders_90d", "customer_eco_share", "customer_price_level_mean", "customer_tenure_days"]
        ],
    ],
    description="Matching ranker: merchant quality and speed, customer taste (eco share, price level).",
)
eta_v1 = FeatureService(
    name="eta_v1",
    features=[
        views.merchant_stats[["merchant_prep_p50_s", "merchant_prep_p90_s", "merchant_orders_28d"]],
        views.merchant_hour_stats,
        views.courier_stats[["courier_speed_kmh", "courier_on_time_rate", "courier_acceptance_rate"]],
        views.cell_hour_stats,
        views.order_context,
    ],
    description="ETA P50/P90: kitchen speed by hour, courier speed, cell congestion, request context.",
)
fraud_v1 = FeatureService(
    name="fraud_v1",
    features=[views.customer_stats, views.merchant_stats[["merchant_orders_28d", "merchant_cancel_rate"]]],
    description="Fraud: customer history (tenure, devices and cards seen, refunds), merchant volume.",
)
green_v1 = FeatureService(
    name="green_v1",
    features=[
        views.merchant_stats[["merchant_prep_p50_s", "merchant_prep_p90_s"]],
        views.merchant_hour_stats[["merchant_hour_prep_p50_s", "merchant_hour_load"]],
        views.courier_stats[["courier_speed_kmh", "courier_on_time_rate"]],
        views.cell_hour_stats[["cell_congestion", "cell_s_per_m"]],
        views.order_context,
    ],
    description="Green mode: can a low-emission courier meet the promise (kitchen, speed, congestion).",
)

SERVICES = [ranker_v1, eta_v1, fraud_v1, green_v1]
