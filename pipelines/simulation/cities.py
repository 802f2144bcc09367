"""The simulated cities, as data: every number the simulator needs about a place lives here.

Ids, bounding boxes, currencies and time zones match the ``cities`` rows seeded by
``api/migrations/0001_kernel.sql``, so simulated history joins the live platform's
tables. Hot spots are real neighbourhoods (approximate centres); weights and
spreads are judgement calls that give a plausible density, not survey data.
"""

from __future__ import annotations

from dataclasses import dataclass

COURIER_MODES: tuple[str, ...] = ("foot", "bicycle", "e_bike", "ev_scooter", "motorbike", "car")
"""Index order matters: the simulator stores a mode as its position in this tuple."""

LOW_EMISSION_MODES: frozenset[str] = frozenset({"foot", "bicycle", "e_bike"})


@dataclass(frozen=True, slots=True)
class HotSpot:
    """A Gaussian blob of density: ``weight`` is relative, ``sigma_km`` its spread."""

    name: str
    lat: float
    lng: float
    weight: float
    sigma_km: float


@dataclass(frozen=True, slots=True)
class Category:
    """A merchant category: its share of merchants, basket and kitchen behaviour."""

    name: str
    share: float
    item_price_major: float
    """Median price of one item in the city's major currency unit before the city's price scale."""
    items_mean: float
    prep_median_s: float


@dataclass(frozen=True, slots=True)
class City:
    id: str
    name: str
    currency: str
    timezone: str
    utc_offset_minutes: int
    """Fixed offset of ``timezone`` (neither city observes daylight saving)."""
    min_lat: float
    min_lng: float
    max_lat: float
    max_lng: float
    commercial: tuple[HotSpot, ...]
    residential: tuple[HotSpot, ...]
    price_scale: float
    """Multiplies category prices: local price level relative to Kathmandu."""
    weekend_days: tuple[int, ...]
    """ISO weekdays (1 = Monday) with weekend demand."""
    rain_probability: float
    """Chance that a simulated day is a rain day (slower travel, more orders)."""
    mode_mix: tuple[float, ...]
    """Courier fleet share per mode, aligned with :data:`COURIER_MODES`."""
    wallet_method: str
    """The dominant local digital payment method."""
    grid_kg_co2e_per_kwh: float
    grid_source: str


CATEGORIES: tuple[Category, ...] = (
    Category("restaurant", 0.42, 380.0, 2.2, 900.0),
    Category("cafe", 0.12, 220.0, 1.8, 420.0),
    Category("bakery", 0.08, 150.0, 2.5, 300.0),
    Category("grocery", 0.20, 180.0, 5.0, 480.0),
    Category("pharmacy", 0.10, 260.0, 1.6, 240.0),
    Category("electronics", 0.08, 1500.0, 1.2, 360.0),
)

KATHMANDU = City(
    id="kathmandu",
    name="Kathmandu Valley",
    currency="NPR",
    timezone="Asia/Kathmandu",
    utc_offset_minutes=345,
    min_lat=27.60,
    min_lng=85.20,
    max_lat=27.80,
    max_lng=85.52,
    commercial=(
        HotSpot("Thamel", 27.7154, 85.3123, 3.0, 0.9),
        HotSpot("New Road", 27.7045, 85.3096, 2.0, 0.7),
        HotSpot("Patan Durbar", 27.6727, 85.3253, 2.0, 1.0),
        HotSpot("Baneshwor", 27.6915, 85.3420, 1.8, 1.1),
        HotSpot("Boudha", 27.7215, 85.3620, 1.0, 0.9),
        HotSpot("Bhaktapur", 27.6710, 85.4298, 1.0, 1.0),
    ),
    residential=(
        HotSpot("Kathmandu core", 27.7100, 85.3200, 3.0, 2.2),
        HotSpot("Lalitpur", 27.6650, 85.3200, 2.0, 2.0),
        HotSpot("Kirtipur", 27.6780, 85.2780, 0.8, 1.3),
        HotSpot("Budhanilkantha", 27.7650, 85.3650, 0.8, 1.6),
        HotSpot("Bhaktapur", 27.6720, 85.4250, 1.2, 1.8),
    ),
    price_scale=1.0,
    weekend_days=(6,),
    rain_probability=0.25,
    mode_mix=(0.03, 0.07, 0.08, 0.12, 0.65, 0.05),
    wallet_method="esewa",
    grid_kg_co2e_per_kwh=0.02,
    grid_source=(
        "Assumption: Nepal's grid is almost entirely hydro (NEA annual report); "
        "0.02 kg CO2e/kWh stands in for hydro life-cycle emissions"
    ),
)

PUNE = City(
    id="pune",
    name="Pune",
    currency="INR",
    timezone="Asia/Kolkata",
    utc_offset_minutes=330,
    min_lat=18.40,
    min_lng=73.72,
    max_lat=18.66,
    max_lng=74.02,
    commercial=(
        HotSpot("Koregaon Park", 18.5362, 73.8940, 2.5, 1.0),
        HotSpot("Deccan / FC Road", 18.5196, 73.8412, 2.5, 1.0),
        HotSpot("Camp", 18.5158, 73.8779, 1.5, 0.8),
        HotSpot("Hinjewadi", 18.5913, 73.7389, 2.0, 1.4),
        HotSpot("Viman Nagar", 18.5679, 73.9143, 1.5, 1.0),
        HotSpot("Hadapsar", 18.5089, 73.9260, 1.2, 1.2),
    ),
    residential=(
        HotSpot("Kothrud", 18.5074, 73.8077, 2.0, 1.8),
        HotSpot("Wakad", 18.5990, 73.7620, 1.5, 1.8),
        HotSpot("Kharadi", 18.5510, 73.9400, 1.3, 1.6),
        HotSpot("Hadapsar", 18.5000, 73.9300, 1.3, 1.8),
        HotSpot("Aundh / Baner", 18.5600, 73.8000, 1.5, 1.6),
        HotSpot("Central Pune", 18.5200, 73.8600, 2.0, 2.0),
    ),
    price_scale=0.75,
    weekend_days=(6, 7),
    rain_probability=0.30,
    mode_mix=(0.02, 0.05, 0.10, 0.18, 0.60, 0.05),
    wallet_method="upi",
    grid_kg_co2e_per_kwh=0.716,
    grid_source="CEA CO2 Baseline Database for the Indian Power Sector, v19 (2023): weighted average 0.716",
)

CITIES: dict[str, City] = {city.id: city for city in (KATHMANDU, PUNE)}
DEFAULT_CITY = KATHMANDU.id


def get_city(city_id: str) -> City:
    """The city profile for ``city_id``; a clear error names the known ids."""
    try:
        return CITIES[city_id]
    except KeyError:
        raise ValueError(f"unknown city {city_id!r}; known: {', '.join(sorted(CITIES))}") from None
