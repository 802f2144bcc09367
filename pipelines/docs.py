"""Column descriptions shared by the Dagster metadata and ``docs/marts.md``."""

from __future__ import annotations

COLUMNS: dict[str, str] = {
    "city_id": "City slug (kathmandu, pune); FK to the platform's cities table",
    "day": "Local calendar day of the event in the city's time zone",
    "currency": "ISO 4217 currency of every *_minor amount in the row",
    "order_id": "Order identifier",
    "customer_id": "Customer identifier",
    "merchant_id": "Merchant identifier",
    "courier_id": "Courier identifier (null when no courier accepted)",
    "session_id": "Search session that led to the order",
    "created_at": "When the row's event happened (UTC)",
    "status": "Lifecycle state at the end of the day",
    "cancel_reason": "customer_cancelled, no_courier, merchant_rejected or payment_failed",
    "subtotal_minor": "Sum of order lines, minor units",
    "delivery_fee_minor": "Delivery fee, minor units",
    "discount_minor": "Promotion discount, minor units",
    "total_minor": "subtotal + fee - discount, minor units",
    "gmv_minor": "Total of delivered orders, minor units",
    "aov_minor": "Average delivered order value, minor units",
    "is_fraud": "Ground-truth fraud label from the simulator",
    "fraud_type": "stolen_card, account_takeover, promo_abuse, collusion or refund_abuse",
    "mode": "Courier vehicle: foot, bicycle, e_bike, ev_scooter, motorbike, car",
    "distance_m": "Road distance merchant to drop-off, metres",
    "prep_s": "Kitchen preparation time, seconds",
    "travel_s": "Pickup to drop-off riding time, seconds",
    "duration_s": "Order creation to delivery, seconds",
    "promised_s": "Delivery time promised to the customer, seconds",
    "routing_estimate_s": "Routing-provider style travel estimate (distance / 22 km/h), seconds",
    "on_time": "Delivered within the promise",
    "co2e_kg": "CO2e emitted by this delivery's mode, kg",
    "co2e_baseline_kg": "CO2e had a motorbike delivered it, kg",
    "co2e_saved_kg": "Baseline minus actual CO2e, kg",
    "on_time_rate": "Share of delivered orders on time",
    "cancellation_rate": "Cancelled orders / orders",
    "refund_rate": "Orders with a refund / orders",
    "courier_utilisation": "Busy time (accept to drop-off) / shift time of active couriers",
    "position": "1-based rank in the list shown to the customer",
    "clicked": "Customer opened the merchant",
    "ordered": "Customer ordered from the merchant in this session",
    "rating": "Stars, 1 to 5",
}


def column_description(name: str) -> str:
    return COLUMNS.get(name, "")
