"""The match service's masks over the pool: reach, opening hours, exclusions, the text query and
favourites, and the results built from them (rounding and reason codes), on an index built
from rows as ``load_snapshot`` builds it (no database needed: the rows are written here)."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime, time, timedelta

import msgspec
import numpy as np
import pytest

from api.domains.matching import service
from api.domains.matching.index import City, CityIndex, build_snapshot
from api.domains.matching.schemas import MatchContext
from serving.eta import GreenOption, Promise
from serving.match import Customer, Ranking

CENTRE = (27.70, 85.32)
MONDAY_10 = datetime(2026, 3, 23, 4, 15, tzinfo=UTC)
"""10:00 on Monday 23 March in Kathmandu (+05:45)."""
TODAY = date(2026, 3, 23)
NAMESPACE = uuid.UUID("0190b5d2-6f00-7000-8000-0000000c0ffe")
MERCHANTS = [  # name, category: merchant i sits 150·(i+1) m north of the centre
    ("Momo House", "restaurant"),
    ("Straße Kitchen", "restaurant"),
    ("CAFÉ Bloom", "cafe"),
    ("Tuesday Tea", "cafe"),  # open on Tuesdays only
    ("Green Grocer", "grocery"),
    ("Holiday Pharmacy", "pharmacy"),  # a holiday today but no hours: always open
    ("Closed Today Momo", "restaurant"),  # Monday hours, but a holiday today
    ("Far Fetch Grocery", "grocery"),  # delivers 50 m only
    ("momo corner", "restaurant"),
    ("Daily Needs", "grocery"),
    ("Ǆungla Bar", "restaurant"),
    ("Night Owl", "restaurant"),  # Mondays 09:00-10:00
]
OPEN_NOW = [0, 1, 2, 4, 5, 8, 9, 10]


def merchant(i: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, str(i))


def _city() -> CityIndex:
    rows: list[dict[str, object]] = [
        {
            "id": merchant(i),
            "city_id": "testville",
            "kind": "merchant",
            "category": category,
            "name": name,
            "lat": CENTRE[0] + math.degrees(150.0 * (i + 1) / 6_371_008.8),
            "lng": CENTRE[1],
            "h3_r7": "872a1072bffffff",
            "prep_time_min": 10 + 5 * (i % 3),
            "delivery_radius_m": 50 if i == 7 else 8_000,
            "eco_packaging": i % 2 == 0,
            "price_level": 1 + i % 4,
        }
        for i, (name, category) in enumerate(MERCHANTS)
    ]
    weekdays = [(d, time(9), time(17)) for d in range(5)]
    hours = [(3, 1, time(8), time(20)), (11, 0, time(9), time(10))] + [(6, d, o, c) for d, o, c in weekdays]
    hour_rows: list[dict[str, object]] = [
        {"merchant_id": merchant(i), "weekday": d, "opens": o, "closes": c} for i, d, o, c in hours
    ]
    holiday_rows: list[dict[str, object]] = [{"merchant_id": merchant(i), "day": TODAY} for i in (5, 6)]
    city = City("testville", "NP", "Asia/Kathmandu", (27.6, 85.2, 27.8, 85.5))
    return build_snapshot([city], rows, hour_rows, holiday_rows).cities["testville"]


CITY = _city()


def _pool(at: datetime = MONDAY_10, **context: object) -> list[int]:
    """The pool's merchant numbers, nearest first."""
    pool = service._candidates(
        CITY, msgspec.convert({"lat": CENTRE[0], "lng": CENTRE[1], **context}, MatchContext), at
    )
    return pool.positions.tolist()


def test_the_pool_is_the_merchants_open_now_that_deliver_this_far_nearest_first() -> None:
    assert _pool() == OPEN_NOW
    assert _pool(MONDAY_10 - timedelta(microseconds=1)) == sorted([*OPEN_NOW, 11])  # before 10:00
    assert _pool(MONDAY_10 + timedelta(days=1)) == [0, 1, 2, 3, 4, 5, 6, 8, 9, 10]  # Tuesday
    assert _pool(category="grocery") == [4, 9]


def test_excluded_merchants_leave_the_pool_and_unknown_ids_are_ignored() -> None:
    excluded = [str(merchant(0)), str(merchant(4)), str(merchant(3)), str(uuid.uuid4())]
    assert _pool(exclude_merchants=excluded) == [1, 2, 5, 8, 9, 10]
    assert _pool(exclude_merchants=[str(uuid.uuid4())]) == OPEN_NOW


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("momo", [0, 8]),  # "Closed Today Momo" is closed
        ("MoMo", [0, 8]),
        ("STRASSE", [1]),  # "Straße" case-folds to "strasse"
        ("café", [2]),
        ("CAFE", [2]),  # by its category
        ("ocer", [4, 9]),  # "Green Grocer" by name and category, "Daily Needs" by category
        ("ǅ", [10]),  # title-case Dz folds like capital Ǆ
        ("zzz", []),
    ],
)
def test_the_query_is_a_case_folded_substring_of_the_name_or_the_category(
    q: str, expected: list[int]
) -> None:
    assert _pool(q=q) == expected


def test_favourites_are_flagged_by_id_and_unknown_ones_ignored() -> None:
    pool = service._candidates(CITY, MatchContext(lat=CENTRE[0], lng=CENTRE[1]), MONDAY_10)
    favourites = CITY.positions_of([str(merchant(1)), str(merchant(9)), str(merchant(7)), "not-a-merchant"])
    candidates = service._scoring_input(CITY, pool, favourites)
    assert candidates.merchant_ids == [str(merchant(i)) for i in OPEN_NOW]
    assert candidates.is_favourite.tolist() == [1.0 if i in (1, 9) else 0.0 for i in OPEN_NOW]
    assert service._scoring_input(CITY, pool, favourites[:0]).is_favourite.tolist() == [0.0] * len(OPEN_NOW)


def test_results_are_rounded_and_explained_from_what_the_ranker_saw() -> None:
    pool = service._candidates(CITY, MatchContext(lat=CENTRE[0], lng=CENTRE[1]), MONDAY_10)
    assert pool.positions.tolist() == OPEN_NOW
    context = MatchContext(lat=CENTRE[0], lng=CENTRE[1], q="any", limit=3)  # reasons read only "a query"
    candidates = service._scoring_input(CITY, pool, CITY.positions_of([str(merchant(9))]))
    n = pool.positions.size
    rating = np.full(n, 4.0)
    rating[[6, 0, 7]] = [4.5, np.nan, 4.449]
    scores = np.linspace(0.0, 1.0, n)
    scores[6] = 1.123456789
    ranking = Ranking(np.array([6, 0, 7]), scores, "m", "1", None, {"merchant_rating_28d": rating})
    promise = Promise(np.array([600.4, 700.5, 801.5]), np.array([900.0, 1000.0, 1100.0]), "e", "1", None)
    green = GreenOption(
        np.array([True, False, True]),
        np.array([0.9996, 0.5, 0.25]),
        np.array([0.123449, 0.2, 0.3]),
        np.array([0.05, 0.0, 0.01]),
        "g",
        "1",
    )
    customer = Customer("c", eco_first=True, price_sensitivity="high")
    results = service._results(
        CITY, pool, candidates, ranking, ranking.order, promise, green, customer, context
    )
    shown = msgspec.to_builtins(results)
    assert [r["merchant_id"] for r in shown] == [str(merchant(i)) for i in (9, 0, 10)]
    assert [r["position"] for r in shown] == [1, 2, 3]
    assert [r["score"] for r in shown] == [1.123457, 0.0, 1.0]
    assert [r["rating"] for r in shown] == [4.5, None, 4.45]
    assert [r["price_level"] for r in shown] == [2, 1, 3]
    assert [r["distance_m"] for r in shown] == [round(d) for d in pool.distances_m[[6, 0, 7]].tolist()]
    assert [r["eta"] for r in shown] == [  # Python's round: halves to even
        {"p50_s": 600, "p90_s": 900},
        {"p50_s": 700, "p90_s": 1000},
        {"p50_s": 802, "p90_s": 1100},
    ]
    assert shown[0]["green_delivery"] == {
        "available": True,
        "mode": "e_bike",
        "kg_co2e": 0.1234,
        "saving_kg_co2e": 0.05,
        "p_on_time": 1.0,
    }
    assert [r["reason_codes"] for r in shown] == [
        [
            "favourite",
            "matches_query",
            "top_rated",
            "quick_kitchen",
            "eco_first_green_delivery",
            "fits_budget",
        ],
        ["matches_query", "nearby", "quick_kitchen", "fits_budget"],
        ["matches_query", "quick_kitchen", "eco_first_green_delivery"],  # 15 min is quick; 4.449 shows 4.45
    ]
    impressions = service._impressions(results, candidates, ranking.order)
    assert [(i["is_favourite"], i["eco_packaging"]) for i in impressions] == [
        (True, False),
        (False, True),
        (False, True),
    ]
    plain = Customer("c", eco_first=False, price_sensitivity="low")
    quiet = MatchContext(lat=CENTRE[0], lng=CENTRE[1])
    far = np.array([5, 7])  # merchants 8 (1350 m, 20 min kitchen) and 10 (1650 m, 15 min)
    promise = Promise(np.array([600.0, 700.0]), np.array([900.0, 1000.0]), "e", "1", None)
    green = GreenOption(np.array([False, True]), np.zeros(2), np.zeros(2), np.zeros(2), "g", "1")
    results = service._results(CITY, pool, candidates, ranking, far, promise, green, plain, quiet)
    assert [r.reason_codes for r in results] == [["open_nearby"], ["quick_kitchen", "green_delivery"]]
