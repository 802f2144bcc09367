"""The slow-moving population of a simulated city: merchants, customers, couriers, providers.

Generated once per (seed, city, scale) and shared by every simulated day, so a
merchant keeps its kitchen speed and a customer keeps their favourites across days.
Hidden traits that drive behaviour (quality, price sensitivity, fraud roles) are
columns too: they are the ground truth models are evaluated against.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import polars as pl
from scipy.spatial import cKDTree

from pipelines.simulation.cities import CATEGORIES, COURIER_MODES, City
from pipelines.simulation.geometry import h3_cells, sample_points, to_km_plane

PROVIDER_SKILLS: tuple[str, ...] = ("plumber", "electrician", "cleaner", "tutor", "beautician", "carpenter")
FRAUD_ROLES: tuple[str, ...] = ("stolen_card", "promo_multi_account", "refund_abuse")


@dataclass(frozen=True, slots=True)
class Scale:
    """Population sizes derived from the expected orders per day (one knob for tests and bench)."""

    merchants: int
    customers: int
    couriers: int
    providers: int

    @classmethod
    def for_orders_per_day(cls, orders_per_day: int) -> Scale:
        def clip(value: float, low: int, high: int) -> int:
            return int(min(max(value, low), high))

        return cls(
            merchants=clip(orders_per_day / 10, 25, 4000),
            customers=clip(orders_per_day * 4, 300, 200_000),
            couriers=clip(orders_per_day / 6, 20, 8000),
            providers=clip(orders_per_day / 50, 10, 1000),
        )


@dataclass(frozen=True)
class Entities:
    city: City
    merchants: pl.DataFrame
    customers: pl.DataFrame
    couriers: pl.DataFrame
    providers: pl.DataFrame


def rng_for(seed: int, city_id: str, *stream: int) -> np.random.Generator:
    """An independent, reproducible random stream per (seed, city, purpose...)."""
    return np.random.default_rng([seed, zlib.crc32(city_id.encode()), *stream])


def _id_series(prefix: str, n: int) -> pl.Series:
    return pl.select(pl.lit(prefix) + pl.int_range(n, eager=True).cast(pl.String).str.zfill(6)).to_series()


def _epoch_dates(rng: np.random.Generator, n: int, start: date, max_days_before: int) -> pl.Series:
    base = datetime(start.year, start.month, start.day, tzinfo=UTC)
    seconds = rng.integers(0, max_days_before * 86400, size=n)
    micros = (int(base.timestamp()) - seconds) * 1_000_000
    return pl.Series(micros).cast(pl.Datetime("us", "UTC"))


def generate_entities(city: City, seed: int, scale: Scale, as_of: date) -> Entities:
    """Every long-lived actor of ``city``; deterministic in (seed, city, scale, as_of)."""
    abbr = city.id[:3]
    rng = rng_for(seed, city.id, 0)

    # Merchants: categories by share, clustered in commercial hot spots.
    m = scale.merchants
    shares = np.array([category.share for category in CATEGORIES])
    category_idx = rng.choice(len(CATEGORIES), size=m, p=shares / shares.sum())
    m_points = sample_points(rng, city, city.commercial, m)
    prep_median = np.array([category.prep_median_s for category in CATEGORIES])[category_idx]
    collusive = np.zeros(m, dtype=bool)
    collusive[rng.choice(m, size=max(1, m // 200), replace=False)] = True
    merchants = pl.DataFrame(
        {
            "merchant_id": _id_series(f"{abbr}-m-", m),
            "city_id": pl.Series([city.id] * m),
            "category": pl.Series([category.name for category in CATEGORIES])[category_idx],
            "lat": m_points[:, 0],
            "lng": m_points[:, 1],
            "h3_r9": h3_cells(m_points, 9),
            "h3_r7": h3_cells(m_points, 7),
            "prep_median_s": np.round(prep_median * rng.lognormal(0.0, 0.35, m)),
            "quality": rng.beta(6.0, 2.0, m),
            "price_level": rng.lognormal(0.0, 0.3, m),
            "rating_prior": np.clip(rng.normal(4.2, 0.35, m), 2.5, 5.0).round(2),
            "eco_packaging": rng.random(m) < 0.25,
            "opened_at": _epoch_dates(rng, m, as_of, 900),
            "is_collusive": collusive,
        }
    )

    # Customers: where people live; a few hundredths carry a fraud role.
    c = scale.customers
    c_points = sample_points(rng, city, city.residential, c)
    m_tree = cKDTree(to_km_plane(m_points, city))
    _, nearest = m_tree.query(to_km_plane(c_points, city), k=min(10, m))
    favourite = nearest[np.arange(c), rng.integers(0, nearest.shape[1], c)]
    role_draw = rng.random(c)
    fraud_role = np.full(c, None, dtype=object)
    fraud_role[role_draw < 0.004] = "stolen_card"
    fraud_role[(role_draw >= 0.004) & (role_draw < 0.010)] = "promo_multi_account"
    fraud_role[(role_draw >= 0.010) & (role_draw < 0.013)] = "refund_abuse"
    device = np.arange(c)
    multi = np.flatnonzero(fraud_role == "promo_multi_account")
    device[multi] = multi[(np.arange(len(multi)) // 4) * 4]  # groups of four accounts share a phone
    customers = pl.DataFrame(
        {
            "customer_id": _id_series(f"{abbr}-c-", c),
            "city_id": pl.Series([city.id] * c),
            "lat": c_points[:, 0],
            "lng": c_points[:, 1],
            "h3_r9": h3_cells(c_points, 9),
            "h3_r7": h3_cells(c_points, 7),
            "signup_at": _epoch_dates(rng, c, as_of, 720),
            "price_sensitivity": rng.beta(2.0, 3.0, c),
            "eco_preference": rng.beta(1.5, 4.0, c),
            "favourite_merchant_id": merchants["merchant_id"].gather(favourite),
            "device_id": _id_series(f"{abbr}-d-", c).gather(device),
            "activity": rng.lognormal(0.0, 0.8, c),
            "fraud_role": pl.Series(fraud_role.tolist(), dtype=pl.String),
        }
    )

    # Couriers: a mode mix per city, shifts that cover lunch and dinner.
    k = scale.couriers
    mode_idx = rng.choice(len(COURIER_MODES), size=k, p=np.array(city.mode_mix) / sum(city.mode_mix))
    k_points = sample_points(rng, city, city.residential, k)
    shift_start = rng.choice(np.array([6, 8, 10, 11, 16, 17]), size=k)
    k_collusive = np.zeros(k, dtype=bool)
    k_collusive[rng.choice(k, size=max(1, int(collusive.sum())), replace=False)] = True
    couriers = pl.DataFrame(
        {
            "courier_id": _id_series(f"{abbr}-k-", k),
            "city_id": pl.Series([city.id] * k),
            "mode": pl.Series(COURIER_MODES)[mode_idx],
            "home_lat": k_points[:, 0],
            "home_lng": k_points[:, 1],
            "shift_start_hour": shift_start,
            "shift_hours": rng.choice(np.array([4, 6, 8, 10]), size=k),
            "speed_factor": rng.lognormal(0.0, 0.12, k),
            "acceptance_rate": rng.beta(8.0, 2.0, k),
            "joined_at": _epoch_dates(rng, k, as_of, 540),
            "is_collusive": k_collusive,
        }
    )

    # Providers: home services with skills and a weekly calendar.
    p = scale.providers
    p_points = sample_points(rng, city, city.residential, p)
    n_skills = rng.integers(1, 4, p)
    skill_draw = rng.random((p, len(PROVIDER_SKILLS))).argsort(axis=1)
    skills = pl.select(
        pl.Series(np.array(PROVIDER_SKILLS)[skill_draw].tolist()).list.head(pl.lit(pl.Series(n_skills)))
    ).to_series()
    work_days = pl.Series((rng.random((p, 7)) < 0.8).tolist()).list.eval(pl.element().arg_true() + 1)
    providers = pl.DataFrame(
        {
            "provider_id": _id_series(f"{abbr}-p-", p),
            "city_id": pl.Series([city.id] * p),
            "skills": skills,
            "lat": p_points[:, 0],
            "lng": p_points[:, 1],
            "hourly_rate_minor": (rng.lognormal(np.log(600.0), 0.3, p) * city.price_scale * 100).round(-2),
            "rating": np.clip(rng.normal(4.4, 0.3, p), 3.0, 5.0).round(2),
            "work_days": work_days,
            "start_hour": rng.choice(np.array([7, 8, 9, 10]), size=p),
            "end_hour": rng.choice(np.array([16, 17, 18, 19, 20]), size=p),
        }
    )
    return Entities(city, merchants, customers, couriers, providers)
