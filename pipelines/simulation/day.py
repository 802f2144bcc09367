"""One simulated day of one city: search sessions, orders, deliveries, payments, refunds, reviews.

Everything is array arithmetic over all the day's sessions at once (NumPy, then
Polars frames); the only Python loops run over the 24 hours of the day and the
handful of fraud patterns, never over rows. A day depends only on (seed, city,
day, entities), so days can be simulated in any order or in parallel.

The causal story, in order: demand (hour, weekday, rain, promotions) makes
search sessions; each session is shown ten nearby merchants and picks by a hidden
utility (distance, price, rating, prep time, eco preference, favourite); converted
sessions become orders; fraud patterns rewrite a small share of them; kitchens
prepare (skewed, slower under load), couriers accept or decline, ride through
hour- and cell-dependent congestion; late or poor orders get cancelled, refunded
and badly reviewed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy.spatial import cKDTree

from pipelines.simulation.cities import CATEGORIES, COURIER_MODES, City
from pipelines.simulation.emissions import BASELINE_MODE, MODE_FACTORS, kg_per_km
from pipelines.simulation.entities import Entities, rng_for
from pipelines.simulation.geometry import haversine_m, to_km_plane
from pipelines.simulation.reviews import review_texts

SHOWN = 10
"""Merchants shown per search session (the ranker's list)."""
CANDIDATES = 30
HOUR_WEIGHTS = np.array(
    [
        0.2,
        0.1,
        0.05,
        0.05,
        0.1,
        0.3,
        0.8,
        1.6,
        2.2,
        2.0,
        2.2,
        3.6,
        5.0,
        4.4,
        2.8,
        2.2,
        2.4,
        3.0,
        4.4,
        5.6,
        5.0,
        3.4,
        1.6,
        0.6,
    ]
)
"""Relative demand per local hour: breakfast, a lunch peak and a larger dinner peak."""
CONGESTION_BY_HOUR = np.array(
    [
        1.0,
        1.0,
        1.0,
        1.0,
        1.0,
        1.05,
        1.2,
        1.45,
        1.65,
        1.6,
        1.4,
        1.3,
        1.3,
        1.3,
        1.3,
        1.35,
        1.5,
        1.7,
        1.8,
        1.65,
        1.4,
        1.2,
        1.1,
        1.0,
    ]
)
WEEKDAY_DEMAND = {1: 0.92, 2: 0.9, 3: 0.93, 4: 0.97, 5: 1.08, 6: 1.2, 7: 1.12}
RAIN_DEMAND = 1.18
RAIN_SLOWDOWN = 1.25
PROMO_DEMAND = 1.15
PROMO_DAY_PROBABILITY = 0.15
CONVERSION_TARGET = 0.72
PAYMENT_METHODS = ("card", "wallet", "cash")

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class DayTables:
    """The day's tables, each already carrying ``city_id`` and ``day`` columns."""

    search_sessions: pl.DataFrame
    search_impressions: pl.DataFrame
    orders: pl.DataFrame
    order_items: pl.DataFrame
    deliveries: pl.DataFrame
    payments: pl.DataFrame
    refunds: pl.DataFrame
    reviews: pl.DataFrame

    def as_dict(self) -> dict[str, pl.DataFrame]:
        return {name: getattr(self, name) for name in DAY_TABLES}


DAY_TABLES: tuple[str, ...] = (
    "search_sessions",
    "search_impressions",
    "orders",
    "order_items",
    "deliveries",
    "payments",
    "refunds",
    "reviews",
)


@dataclass(frozen=True, slots=True)
class DayConditions:
    """What kind of day it was: observable by the models (weather, promotion) and by analysts."""

    rain: bool
    promo: bool
    demand_multiplier: float


def day_conditions(city: City, seed: int, day: date) -> DayConditions:
    rng = rng_for(seed, city.id, day.toordinal(), 1)
    rain = bool(rng.random() < city.rain_probability)
    promo = bool(rng.random() < PROMO_DAY_PROBABILITY)
    multiplier = (
        WEEKDAY_DEMAND[day.isoweekday()] * (RAIN_DEMAND if rain else 1.0) * (PROMO_DEMAND if promo else 1.0)
    )
    if day.isoweekday() in city.weekend_days:
        multiplier *= 1.05
    return DayConditions(rain, promo, multiplier)


def _ts(epoch_s: FloatArray | IntArray) -> pl.Series:
    return pl.Series((np.asarray(epoch_s, dtype=np.float64) * 1e6).astype(np.int64)).cast(
        pl.Datetime("us", "UTC")
    )


def _ids(prefix: str, n: int) -> pl.Series:
    return pl.select(pl.lit(prefix) + pl.int_range(n, eager=True).cast(pl.String).str.zfill(7)).to_series()


def _sigmoid(x: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def _cell_congestion(cells: pl.Series, seed: int) -> FloatArray:
    """A stable congestion factor per H3 cell (dense old towns are slower), 1.0 to 1.6."""
    hashed = cells.hash(seed=seed % (2**32)).to_numpy()
    return np.asarray(1.0 + 0.6 * ((hashed % 10_007) / 10_007.0) ** 1.5, dtype=np.float64)


def simulate_day(entities: Entities, seed: int, day: date, orders_per_day: int) -> DayTables:
    """Simulate ``day`` (a local calendar day) in ``entities.city``."""
    city = entities.city
    rng = rng_for(seed, city.id, day.toordinal(), 2)
    cond = day_conditions(city, seed, day)
    abbr = f"{city.id[:3]}-{day:%Y%m%d}"
    midnight_utc = (
        datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() - city.utc_offset_minutes * 60
    )
    merchants, customers, couriers = entities.merchants, entities.customers, entities.couriers

    # ---- Sessions and what each was shown -------------------------------------------------
    n_sessions = int(rng.poisson(orders_per_day * cond.demand_multiplier / CONVERSION_TARGET))
    hours = rng.choice(24, size=n_sessions, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    order_seconds = np.sort(hours * 3600 + rng.random(n_sessions) * 3600)
    hours = (order_seconds // 3600).astype(np.int64)
    # Fraud-only accounts never browse normally; they appear through the fraud patterns below.
    fraud_only = customers["fraud_role"].is_in(["stolen_card", "promo_multi_account"]).fill_null(False)
    activity = customers["activity"].to_numpy() * ~fraud_only.to_numpy()
    cust = rng.choice(len(customers), size=n_sessions, p=activity / activity.sum())
    c_points = customers.select("lat", "lng").to_numpy()
    m_points = merchants.select("lat", "lng").to_numpy()
    n_merchants = len(merchants)
    k = min(CANDIDATES, n_merchants)
    tree = cKDTree(to_km_plane(m_points, city))
    _, cand = tree.query(to_km_plane(c_points[cust], city), k=k)
    cand = cand.reshape(n_sessions, k)
    rating = merchants["rating_prior"].to_numpy()
    cand_dist_km = (
        haversine_m(np.repeat(c_points[cust], k, axis=0), m_points[cand.ravel()]).reshape(n_sessions, k)
        / 1000
    )
    # The platform's (current, naive) ranking decides what is shown: near and well rated, noisy.
    platform_score = -cand_dist_km / 2.0 + 0.5 * rating[cand] + rng.gumbel(0, 0.4, cand.shape)
    order_in_list = np.argsort(-platform_score, axis=1)[:, : min(SHOWN, k)]
    shown = np.take_along_axis(cand, order_in_list, axis=1)
    shown_dist_km = np.take_along_axis(cand_dist_km, order_in_list, axis=1)
    n_shown = shown.shape[1]
    positions = np.arange(1, n_shown + 1)

    # ---- The hidden utility the customer decides by ----------------------------------------
    price_level = merchants["price_level"].to_numpy()
    prep_median = merchants["prep_median_s"].to_numpy()
    eco = merchants["eco_packaging"].to_numpy()
    price_sens = customers["price_sensitivity"].to_numpy()[cust][:, None]
    eco_pref = customers["eco_preference"].to_numpy()[cust][:, None]
    fav_idx = merchants["merchant_id"].search_sorted(customers["favourite_merchant_id"]).to_numpy()
    is_fav = shown == fav_idx[cust][:, None]
    distance_weight = 0.55 * (1.2 if cond.rain else 1.0)
    utility = (
        1.0
        - distance_weight * shown_dist_km
        - 2.0 * price_sens * np.log(price_level[shown])
        + 1.1 * (rating[shown] - 4.0)
        - 0.04 * prep_median[shown] / 60.0
        + 1.2 * eco_pref * eco[shown]
        + 1.8 * is_fav
        - 0.35 * np.log(positions)[None, :]
        + rng.gumbel(0.0, 0.5, shown.shape)
    )
    choice = np.argmax(utility, axis=1)
    best = utility[np.arange(n_sessions), choice]
    converted = rng.random(n_sessions) < _sigmoid(2.0 * (best - np.median(best)) + 1.0)
    clicked = (utility > best[:, None] - 0.8) & (rng.random(shown.shape) < 0.85)
    clicked[np.arange(n_sessions), choice] |= converted

    # ---- Orders: converted sessions, then fraud rewrites -----------------------------------
    s_idx = np.flatnonzero(converted)
    n = len(s_idx)
    o_merchant = shown[s_idx, choice[s_idx]]
    o_customer = cust[s_idx].copy()
    o_time = order_seconds[s_idx] + rng.uniform(30, 400, n)
    c_device_codes = customers["device_id"].to_numpy()
    o_device = c_device_codes[o_customer].astype(object)
    new_device = rng.random(n) < 0.02
    o_device[new_device] = (
        pl.Series([f"{abbr}-nd-"] * int(new_device.sum())) + _ids("", int(new_device.sum()))
    ).to_numpy()
    phone_changed = rng.random(n) < 0.003
    dropoff = c_points[o_customer] + rng.normal(0, 0.0004, (n, 2))
    qty_mult = np.ones(n)
    promo_code = np.full(n, None, dtype=object)
    if cond.promo:
        promo_code[rng.random(n) < 0.3] = "FEST15"
    method = rng.choice(3, size=n, p=[0.3, 0.4, 0.3])
    card_fp = np.full(n, None, dtype=object)
    fraud_type = np.full(n, None, dtype=object)
    forced_courier = np.full(n, -1, dtype=np.int64)
    roles = customers["fraud_role"].to_numpy()

    def pick(p: float) -> IntArray:
        free = np.flatnonzero(fraud_type == None)  # noqa: E711 (numpy object comparison)
        count = min(len(free), int(rng.binomial(n, p)))
        return np.asarray(rng.choice(free, size=count, replace=False), dtype=np.int64)

    # Stolen cards: bursts of orders from one device, each with another card, within half an hour.
    stolen_pool = np.flatnonzero(roles == "stolen_card")
    burst_orders = pick(0.003)
    if len(burst_orders) and len(stolen_pool):
        burst_id = np.arange(len(burst_orders)) // 6
        account = rng.choice(stolen_pool, size=burst_id.max() + 1)
        start = rng.uniform(0, 86400 - 1800, burst_id.max() + 1)
        fraud_type[burst_orders] = "stolen_card"
        o_customer[burst_orders] = account[burst_id]
        o_time[burst_orders] = start[burst_id] + rng.uniform(0, 1800, len(burst_orders))
        o_device[burst_orders] = (f"{abbr}-fd-" + pl.Series(burst_id).cast(pl.String)).to_numpy()
        method[burst_orders] = 0
        qty_mult[burst_orders] = 3.0
        dropoff[burst_orders] = c_points[o_customer[burst_orders]] + rng.normal(
            0, 0.01, (len(burst_orders), 2)
        )
    # Account takeover after a SIM swap: a tenured account, a new phone, far away, a large basket.
    ato = pick(0.0015)
    fraud_type[ato] = "account_takeover"
    o_device[ato] = (f"{abbr}-ato-" + _ids("", len(ato))).to_numpy()
    new_device[ato] = True
    phone_changed[ato] = rng.random(len(ato)) < 0.9
    dropoff[ato] = c_points[rng.integers(0, len(customers), len(ato))]
    qty_mult[ato] = 2.0
    method[ato] = rng.choice([0, 1], size=len(ato))
    # Promo abuse through multi-accounting: accounts that share a phone all redeem the welcome code.
    promo_pool = np.flatnonzero(roles == "promo_multi_account")
    promo_abuse = pick(0.003) if len(promo_pool) else np.zeros(0, dtype=np.int64)
    fraud_type[promo_abuse] = "promo_abuse"
    o_customer[promo_abuse] = (
        rng.choice(promo_pool, size=len(promo_abuse)) if len(promo_pool) else o_customer[promo_abuse]
    )
    o_device[promo_abuse] = c_device_codes[o_customer[promo_abuse]]
    promo_code[promo_abuse] = "WELCOME50"
    dropoff[promo_abuse] = c_points[o_customer[promo_abuse]]
    # Courier-merchant collusion: fake orders at a colluding merchant "delivered" by its partner.
    m_coll = np.flatnonzero(merchants["is_collusive"].to_numpy())
    k_coll = np.flatnonzero(couriers["is_collusive"].to_numpy())
    collusion = pick(0.001)
    fraud_type[collusion] = "collusion"
    pair = rng.integers(0, min(len(m_coll), len(k_coll)), len(collusion))
    o_merchant[collusion] = m_coll[pair]
    forced_courier[collusion] = k_coll[pair]
    method[collusion] = 1
    qty_mult[collusion] = 2.5
    card_fp[method == 0] = (
        f"{city.id[:3]}-card-" + pl.Series(o_customer[method == 0]).cast(pl.String)
    ).to_numpy()
    card_fp[burst_orders] = (f"{abbr}-stolen-" + _ids("", len(burst_orders))).to_numpy()

    # ---- Items and money -------------------------------------------------------------------
    category_names = [category.name for category in CATEGORIES]
    m_cat = merchants["category"].cast(pl.Enum(category_names)).to_physical().to_numpy()
    cat = m_cat[o_merchant]
    items_mean = np.array([category.items_mean for category in CATEGORIES])[cat]
    n_items = 1 + rng.poisson(items_mean - 1.0)
    line_order = np.repeat(np.arange(n), n_items)
    line_no = np.arange(len(line_order)) - np.repeat(np.cumsum(n_items) - n_items, n_items) + 1
    base_price = np.array([category.item_price_major for category in CATEGORIES])[cat] * city.price_scale
    unit_price = (
        np.round(
            base_price[line_order]
            * price_level[o_merchant][line_order]
            * rng.lognormal(0.0, 0.45, len(line_order)),
            0,
        )
        * 100
    )
    quantity = np.ceil((1 + (rng.random(len(line_order)) < 0.2)) * qty_mult[line_order])
    sku = rng.integers(0, 60, len(line_order))
    line_total = unit_price * quantity
    subtotal = np.bincount(line_order, weights=line_total, minlength=n)

    merchant_pts = m_points[o_merchant]
    straight_m = haversine_m(merchant_pts, dropoff)
    road_m = straight_m * rng.uniform(1.2, 1.45, n) + 150
    fee = np.round((60 + 20 * road_m / 1000) * city.price_scale) * 100
    discount = np.zeros(n)
    discount[promo_code == "FEST15"] = np.minimum(subtotal * 0.15, 15000)[promo_code == "FEST15"]
    discount[promo_code == "WELCOME50"] = np.minimum(subtotal * 0.5, 40000)[promo_code == "WELCOME50"]
    discount = np.round(discount, -2)
    total = subtotal + fee - discount

    # ---- Kitchen, courier and road ---------------------------------------------------------
    o_hour = np.clip((o_time // 3600).astype(np.int64), 0, 23)
    load_key = o_merchant * 24 + o_hour
    _, load_inverse, load_counts = np.unique(load_key, return_inverse=True, return_counts=True)
    load = load_counts[load_inverse]
    prep_s = prep_median[o_merchant] * rng.lognormal(0.0, 0.35, n) * (1 + 0.08 * (load - 1))
    prep_s *= 1.05 if cond.rain else 1.0

    courier_idx = np.full(n, -1, dtype=np.int64)
    k_home = couriers.select("home_lat", "home_lng").to_numpy()
    start = couriers["shift_start_hour"].to_numpy()
    span = couriers["shift_hours"].to_numpy()
    for hour in range(24):  # one iteration per hour of the day, each vectorised over its orders
        in_hour = np.flatnonzero(o_hour == hour)
        on_shift = np.flatnonzero((hour - start) % 24 < span)
        if len(in_hour) == 0 or len(on_shift) == 0:
            continue
        offered = on_shift[rng.integers(0, len(on_shift), (len(in_hour), 3))]
        dist = haversine_m(np.repeat(merchant_pts[in_hour], 3, axis=0), k_home[offered.ravel()]).reshape(
            -1, 3
        )
        courier_idx[in_hour] = offered[np.arange(len(in_hour)), np.argmin(dist, axis=1)]
    courier_idx[forced_courier >= 0] = forced_courier[forced_courier >= 0]
    has_courier = courier_idx >= 0
    safe_courier = np.where(has_courier, courier_idx, 0)
    acceptance = couriers["acceptance_rate"].to_numpy()[safe_courier]
    pickup_m = haversine_m(k_home[safe_courier], merchant_pts) * 1.3 * rng.uniform(0.2, 1.0, n)
    p_decline = np.clip(
        0.12 + 0.03 * pickup_m / 1000 + (0.1 if cond.rain else 0) - 0.4 * (acceptance - 0.8), 0.02, 0.8
    )
    declines = np.minimum(rng.geometric(1.0 - p_decline) - 1, 4)
    declines[collusion] = 0
    has_courier &= declines < 4

    mode_idx = couriers["mode"].cast(pl.Enum(list(COURIER_MODES))).to_physical().to_numpy()[safe_courier]
    speed = np.array([MODE_FACTORS[mode].speed_kmh for mode in COURIER_MODES])[mode_idx]
    exposure = np.array([MODE_FACTORS[mode].congestion_exposure for mode in COURIER_MODES])[mode_idx]
    m_cells = merchants["h3_r7"]
    cell_factor = _cell_congestion(m_cells, seed)[o_merchant]
    congestion = 1.0 + (cell_factor * CONGESTION_BY_HOUR[o_hour] - 1.0) * exposure
    congestion *= RAIN_SLOWDOWN if cond.rain else 1.0
    kmh = speed * couriers["speed_factor"].to_numpy()[safe_courier] / congestion
    travel_s = road_m / 1000 / kmh * 3600 * rng.lognormal(0.0, 0.15, n)
    travel_s[collusion] = rng.uniform(20, 90, len(collusion))  # a fake delivery barely moves
    pickup_travel_s = pickup_m / 1000 / kmh * 3600
    assign_s = 15 + declines * 35 + rng.exponential(20, n)
    ready_s = prep_s
    pickup_after_s = np.maximum(assign_s + pickup_travel_s, ready_s) + 60
    duration_s = np.round(pickup_after_s + travel_s + 60)  # whole seconds, as stored
    routing_travel_s = road_m / 1000 / 22.0 * 3600
    category_prep = np.array([category.prep_median_s for category in CATEGORIES])[cat]
    promised_s = np.round(category_prep * 1.4 + 60 + routing_travel_s * 1.3 + 600)

    # ---- Outcomes: cancellations, payments, refunds, reviews ---------------------------------
    lateness = np.clip((duration_s - promised_s) / promised_s, 0.0, None)
    status = np.full(n, "delivered", dtype=object)
    reason = np.full(n, None, dtype=object)
    cancel_after = np.full(n, np.nan)
    payment_ok = rng.random(n) > 0.015
    payment_ok[method == 2] = True
    rejected = rng.random(n) < 0.01 * (1 + load / 10)
    customer_cancel = rng.random(n) < 0.02 + 0.15 * np.minimum(lateness, 1.0)
    for flag, label, after in (
        (customer_cancel, "customer_cancelled", rng.uniform(60, 900, n)),
        (~has_courier, "no_courier", assign_s + 600),
        (rejected, "merchant_rejected", rng.uniform(30, 240, n)),
        (~payment_ok, "payment_failed", np.full(n, 20.0)),
    ):
        flag = flag & (fraud_type != "collusion")
        status[flag] = "cancelled"
        reason[flag] = label
        cancel_after[flag] = after[flag]
    delivered = status == "delivered"
    has_delivery = has_courier & (reason != "merchant_rejected") & (reason != "payment_failed")

    refund_amount = np.zeros(n)
    refund_reason = np.full(n, None, dtype=object)
    prepaid_cancel = ~delivered & (method != 2) & payment_ok
    refund_amount[prepaid_cancel] = total[prepaid_cancel]
    refund_reason[prepaid_cancel] = "order_cancelled"
    quality = merchants["quality"].to_numpy()[o_merchant]
    complaint = delivered & (rng.random(n) < 0.005 + 0.05 * np.minimum(lateness, 1) + 0.03 * (1 - quality))
    refund_amount[complaint] = np.round(subtotal[complaint] * 0.3, -2)
    refund_reason[complaint] = np.where(lateness[complaint] > 0.2, "late_delivery", "quality_issue")
    abuser = (roles[o_customer] == "refund_abuse") & delivered & (fraud_type == None)  # noqa: E711
    abuse = abuser & (rng.random(n) < 0.6)
    refund_amount[abuse] = np.round(subtotal[abuse] * rng.uniform(0.5, 1.0, int(abuse.sum())), -2)
    refund_reason[abuse] = "item_missing"
    fraud_type[abuse] = "refund_abuse"

    reviewed = delivered & (rng.random(n) < 0.35) & (fraud_type != "collusion")
    rating_raw = 5.0 - 2.5 * np.minimum(lateness, 1.5) - 2.0 * (1 - quality) + rng.normal(0, 0.6, n)
    stars = np.clip(np.round(rating_raw), 1, 5).astype(np.int64)

    # ---- Frames -----------------------------------------------------------------------------
    base = {"city_id": pl.lit(city.id), "day": pl.lit(day)}
    order_ids = _ids(f"{abbr}-o-", n)
    session_ids = _ids(f"{abbr}-s-", n_sessions)
    created = midnight_utc + o_time
    merchant_ids = merchants["merchant_id"]
    customer_ids = customers["customer_id"]
    courier_ids = couriers["courier_id"]
    currency = city.currency

    session_order = np.full(n_sessions, -1, dtype=np.int64)
    genuine = fraud_type != "collusion"
    session_order[s_idx[genuine]] = np.flatnonzero(genuine)
    session_customer = cust.copy()
    session_customer[s_idx] = o_customer
    ordered = np.zeros(shown.shape, dtype=bool)
    ordered[s_idx[genuine], choice[s_idx[genuine]]] = True
    search_sessions = pl.DataFrame(
        {
            "session_id": session_ids,
            "customer_id": customer_ids.gather(session_customer),
            "created_at": _ts(midnight_utc + order_seconds),
            "hour": hours.astype(np.int8),
            "customer_h3_r9": customers["h3_r9"].gather(session_customer),
            "rain": np.full(n_sessions, cond.rain),
            "n_shown": np.full(n_sessions, n_shown, dtype=np.int8),
            "converted": session_order >= 0,
            "order_id": order_ids.gather(np.maximum(session_order, 0)) if n else [None] * n_sessions,
        }
    ).with_columns(pl.when(pl.col("converted")).then(pl.col("order_id")).otherwise(None), **base)
    flat_shown = shown.ravel()
    search_impressions = pl.DataFrame(
        {
            "session_id": session_ids.gather(np.repeat(np.arange(n_sessions), n_shown)),
            "position": np.tile(positions, n_sessions).astype(np.int8),
            "merchant_id": merchant_ids.gather(flat_shown),
            "distance_m": np.round(shown_dist_km.ravel() * 1000).astype(np.int32),
            "price_level": price_level[flat_shown].astype(np.float32),
            "rating": rating[flat_shown].astype(np.float32),
            "prep_estimate_s": prep_median[flat_shown].astype(np.int32),
            "eco_packaging": eco[flat_shown],
            "is_favourite": is_fav.ravel(),
            "clicked": clicked.ravel(),
            "ordered": ordered.ravel(),
        }
    ).with_columns(**base)

    order_session = session_ids.gather(s_idx)
    orders = pl.DataFrame(
        {
            "order_id": order_ids,
            "session_id": order_session,
            "customer_id": customer_ids.gather(o_customer),
            "merchant_id": merchant_ids.gather(o_merchant),
            "courier_id": courier_ids.gather(safe_courier),
            "created_at": _ts(created),
            "status": pl.Series(status.tolist(), dtype=pl.String),
            "cancel_reason": pl.Series(reason.tolist(), dtype=pl.String),
            "cancelled_at": _ts(created + np.nan_to_num(cancel_after)),
            "currency": pl.Series([currency] * n),
            "item_count": np.bincount(line_order, weights=quantity, minlength=n).astype(np.int32),
            "subtotal_minor": subtotal.astype(np.int64),
            "delivery_fee_minor": fee.astype(np.int64),
            "discount_minor": discount.astype(np.int64),
            "total_minor": total.astype(np.int64),
            "promo_code": pl.Series(promo_code.tolist(), dtype=pl.String),
            "payment_method": pl.Series(PAYMENT_METHODS).gather(method),
            "device_id": pl.Series(o_device.tolist(), dtype=pl.String),
            "new_device": new_device,
            "phone_changed_recently": phone_changed,
            "dropoff_lat": dropoff[:, 0],
            "dropoff_lng": dropoff[:, 1],
            "rain": np.full(n, cond.rain),
            "promo_day": np.full(n, cond.promo),
            "is_fraud": fraud_type != None,  # noqa: E711
            "fraud_type": pl.Series(fraud_type.tolist(), dtype=pl.String),
        }
    ).with_columns(
        pl.when(pl.Series(has_delivery)).then(pl.col("courier_id")).otherwise(None),
        pl.when(pl.col("status") == "cancelled").then(pl.col("cancelled_at")).otherwise(None),
        **base,
    )

    order_items = pl.DataFrame(
        {
            "order_id": order_ids.gather(line_order),
            "line_no": line_no.astype(np.int16),
            "sku": merchant_ids.gather(o_merchant[line_order]) + "-" + pl.Series(sku).cast(pl.String),
            "quantity": quantity.astype(np.int32),
            "unit_price_minor": unit_price.astype(np.int64),
            "line_total_minor": line_total.astype(np.int64),
            "currency": pl.Series([currency] * len(line_order)),
        }
    ).with_columns(**base)

    kg_km = np.array(kg_per_km(city))
    co2e = road_m / 1000 * kg_km[mode_idx]
    co2e_baseline = road_m / 1000 * kg_km[COURIER_MODES.index(BASELINE_MODE)]
    d = np.flatnonzero(has_delivery)
    delivered_d = delivered[d]
    m_h3_r9 = merchants["h3_r9"]

    def when_delivered(values: FloatArray) -> pl.Series:
        return pl.Series(np.where(delivered_d, values, np.nan)).fill_nan(None)

    deliveries = (
        pl.DataFrame(
            {
                "delivery_id": _ids(f"{abbr}-v-", len(d)),
                "order_id": order_ids.gather(d),
                "courier_id": courier_ids.gather(courier_idx[d]),
                "merchant_id": merchant_ids.gather(o_merchant[d]),
                "mode": pl.Series(COURIER_MODES).gather(mode_idx[d]),
                "status": pl.Series(np.where(delivered_d, "delivered", "cancelled").tolist()),
                "created_at": _ts(created[d]),
                "hour": o_hour[d].astype(np.int8),
                "weekday": np.full(len(d), day.isoweekday(), dtype=np.int8),
                "rain": np.full(len(d), cond.rain),
                "merchant_h3_r9": m_h3_r9.gather(o_merchant[d]),
                "merchant_h3_r7": m_cells.gather(o_merchant[d]),
                "straight_m": np.round(straight_m[d]).astype(np.int32),
                "distance_m": np.round(road_m[d]).astype(np.int32),
                "declines": declines[d].astype(np.int8),
                "merchant_load": load[d].astype(np.int16),
                "prep_s": np.round(prep_s[d]),
                "pickup_travel_s": np.round(pickup_travel_s[d]),
                "travel_s": when_delivered(np.round(travel_s[d])),
                "duration_s": when_delivered(np.round(duration_s[d])),
                "routing_estimate_s": np.round(routing_travel_s[d]),
                "promised_s": np.round(promised_s[d]),
                "accepted_at": _ts(created[d] + assign_s[d]),
                "picked_up_at": _ts(created[d] + pickup_after_s[d]),
                "delivered_at": _ts(created[d] + duration_s[d]),
                "on_time": pl.Series(np.where(delivered_d, duration_s[d] <= promised_s[d], False)),
                "congestion": congestion[d].astype(np.float32),
                "co2e_kg": when_delivered(co2e[d]),
                "co2e_baseline_kg": when_delivered(co2e_baseline[d]),
                "co2e_saved_kg": when_delivered(co2e_baseline[d] - co2e[d]),
            }
        )
        .with_columns(
            pl.when(pl.col("status") == "delivered").then(pl.col(c)).otherwise(None)
            for c in ("picked_up_at", "delivered_at", "on_time")
        )
        .with_columns(**base)
    )

    pay_status = np.where(~payment_ok, "failed", np.where((method == 2) & ~delivered, "voided", "captured"))
    captured_at = np.where(method == 2, created + duration_s, created + 5)
    payments = pl.DataFrame(
        {
            "payment_id": _ids(f"{abbr}-p-", n),
            "order_id": order_ids,
            "method": pl.Series(PAYMENT_METHODS).gather(method),
            "provider": pl.Series(["card_gateway", city.wallet_method, "cash"]).gather(method),
            "status": pl.Series(pay_status.tolist()),
            "amount_minor": total.astype(np.int64),
            "currency": pl.Series([currency] * n),
            "card_fingerprint": pl.Series(card_fp.tolist(), dtype=pl.String),
            "device_id": pl.Series(o_device.tolist(), dtype=pl.String),
            "created_at": _ts(created),
            "captured_at": _ts(captured_at),
        }
    ).with_columns(
        pl.when(pl.col("status") == "captured").then(pl.col("captured_at")).otherwise(None), **base
    )

    r = np.flatnonzero(refund_amount > 0)
    refund_at = np.where(
        delivered[r],
        created[r] + duration_s[r] + rng.uniform(600, 7200, len(r)),
        created[r] + np.nan_to_num(cancel_after[r]) + 60,
    )
    refunds = pl.DataFrame(
        {
            "refund_id": _ids(f"{abbr}-r-", len(r)),
            "order_id": order_ids.gather(r),
            "payment_id": payments["payment_id"].gather(r),
            "amount_minor": refund_amount[r].astype(np.int64),
            "currency": pl.Series([currency] * len(r)),
            "reason": pl.Series(refund_reason[r].tolist(), dtype=pl.String),
            "created_at": _ts(refund_at),
        }
    ).with_columns(**base)

    v = np.flatnonzero(reviewed)
    late_flag = lateness[v] > 0.15
    reviews = pl.DataFrame(
        {
            "review_id": _ids(f"{abbr}-w-", len(v)),
            "order_id": order_ids.gather(v),
            "customer_id": customer_ids.gather(o_customer[v]),
            "merchant_id": merchant_ids.gather(o_merchant[v]),
            "courier_id": courier_ids.gather(courier_idx[v]),
            "rating": stars[v].astype(np.int8),
            "text": review_texts(rng, stars[v], late_flag),
            "created_at": _ts(created[v] + duration_s[v] + rng.uniform(300, 20000, len(v))),
        }
    ).with_columns(**base)
    return DayTables(
        search_sessions, search_impressions, orders, order_items, deliveries, payments, refunds, reviews
    )
