"""GET/POST /v1/match end to end: real PostgreSQL, a real ranker from MLflow, features from Feast."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.security.principal import Role
from nearx.settings import Settings
from serving.online import OnlineFeatures
from serving.runtime import build_runtime
from tests.api.matching.conftest import CENTRE, MERCHANTS, ServingHome, insert_city, merchant_id, ready
from tests.api.profiles.users import auth, insert_user
from tests.serving.conftest import open_feature_store
from tests.serving.trained import register, train_ranker

Client = AsyncTestClient[Litestar]
AT = {"lat": CENTRE[0], "lng": CENTRE[1]}


async def _customer(conn: Any, settings: Settings) -> tuple[uuid.UUID, dict[str, str]]:
    user = await insert_user(conn, Role.CUSTOMER)
    return user, auth(settings, user, Role.CUSTOMER)


async def _events(app: Litestar, conn: Any, event_type: str) -> list[dict[str, Any]]:
    """The events of a type in the outbox, once the app's buffered ``match.served`` are written
    (within the buffer's 20 ms interval). The app runs in the test client's portal thread, on its
    own event loop, so the test waits for its buffer to be idle instead of flushing it from here."""
    async with asyncio.timeout(10):
        while not app.state.events.idle:  # noqa: ASYNC110 (another thread's loop: no event to await)
            await asyncio.sleep(0.01)
    rows = await (
        await conn.execute(
            "SELECT payload FROM outbox WHERE event_type = %s ORDER BY position", (event_type,)
        )
    ).fetchall()
    return [r["payload"] for r in rows]


async def test_ranked_by_the_champion_with_everything_a_result_needs(
    app: Litestar, client: Client, conn: Any, settings: Settings
) -> None:
    await insert_city(conn, paused=1, pending=2)
    await conn.execute(  # merchant 4 is closed all week (hours only on a day that never matches now)
        "INSERT INTO merchant_hours (merchant_id, weekday, opens, closes) VALUES (%s, 0, '00:00', '00:01')",
        (merchant_id(4),),
    )
    await ready(app)
    _, headers = await _customer(conn, settings)
    response = await client.get("/v1/match", params={**AT, "limit": 50}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["city_id"] == "kathmandu"
    assert body["scoring"]["model"] == "nearx-ranker", (body["scoring"], app.state.scoring.registry.status)
    assert body["scoring"]["model_version"] == "1"
    assert body["scoring"]["degraded"] is False
    shown = {r["merchant_id"] for r in body["results"]}
    assert str(merchant_id(1)) not in shown  # busy switch on
    assert str(merchant_id(2)) not in shown  # not approved
    assert str(merchant_id(4)) not in shown  # closed now
    assert len(shown) == MERCHANTS - 3
    assert [r["position"] for r in body["results"]] == list(range(1, len(shown) + 1))
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    for result in body["results"]:
        assert result["distance_m"] > 0
        assert 1 <= result["price_level"] <= 4
        assert 3.0 <= result["rating"] <= 5.0  # merchant_rating_28d from the online store
        assert 0 < result["eta"]["p50_s"] <= result["eta"]["p90_s"]
        green = result["green_delivery"]
        assert green["mode"] == "e_bike"
        assert green["saving_kg_co2e"] > 0
        assert result["reason_codes"]
    near = [r for r in body["results"] if r["distance_m"] <= 1000]
    assert near
    assert all("nearby" in r["reason_codes"] for r in near)


async def test_category_and_text_query_narrow_the_candidates(
    app: Litestar, client: Client, conn: Any, settings: Settings
) -> None:
    await insert_city(conn)
    await ready(app)
    _, headers = await _customer(conn, settings)
    groceries = (
        await client.get("/v1/match", params={**AT, "category": "grocery", "limit": 50}, headers=headers)
    ).json()
    assert {r["category"] for r in groceries["results"]} == {"grocery"}
    assert len(groceries["results"]) == MERCHANTS // 3
    momo = (await client.post("/v1/match", json={**AT, "q": "momo", "limit": 50}, headers=headers)).json()
    assert {r["name"] for r in momo["results"]} == {
        f"Merchant {i} Momo House" for i in range(0, MERCHANTS, 5)
    }
    assert all("matches_query" in r["reason_codes"] for r in momo["results"])


async def test_ranking_changes_with_personalisation(
    app: Litestar, client: Client, conn: Any, settings: Settings
) -> None:
    await insert_city(conn)
    await ready(app)
    user, headers = await _customer(conn, settings)
    before = (await client.get("/v1/match", params={**AT, "limit": 50}, headers=headers)).json()["results"]
    last = before[-1]["merchant_id"]
    await conn.execute(
        "INSERT INTO profiles (user_id, favourite_merchants) VALUES (%s, %s)", (user, [uuid.UUID(last)])
    )
    after = (await client.get("/v1/match", params={**AT, "limit": 50}, headers=headers)).json()["results"]
    position = {r["merchant_id"]: r["position"] for r in after}
    assert position[last] < len(before)
    assert "favourite" in next(r for r in after if r["merchant_id"] == last)["reason_codes"]


async def test_an_eco_minded_customer_sees_eco_packaging_merchants_higher(
    app: Litestar, client: Client, conn: Any, settings: Settings
) -> None:
    await insert_city(conn)
    eco = [merchant_id(i) for i in range(2, MERCHANTS, 4)]
    await conn.execute("UPDATE merchants SET eco_packaging = true WHERE id = ANY(%s)", (eco,))
    await ready(app)
    _, headers = await _customer(conn, settings)

    async def mean_eco_position(eco_first: bool) -> float:
        body = {**AT, "limit": 50, "eco_first": eco_first}
        response = await client.post("/v1/match", json=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["scoring"]["model"] == "nearx-ranker"
        positions = {r["merchant_id"]: r["position"] for r in response.json()["results"]}
        return sum(positions[str(m)] for m in eco) / len(eco)

    assert await mean_eco_position(True) < await mean_eco_position(False)


async def test_alias_move_hot_swaps_the_ranker_behind_the_api(
    app: Litestar, client: Client, conn: Any, settings: Settings, serving_home: ServingHome
) -> None:
    await insert_city(conn)
    await ready(app)
    _, headers = await _customer(conn, settings)
    first = (await client.get("/v1/match", params=AT, headers=headers)).json()["scoring"]
    version = register(serving_home.uri, "nearx-ranker", train_ranker(seed=12, n_estimators=15))
    try:
        await ready(app)
        second = (await client.get("/v1/match", params=AT, headers=headers)).json()["scoring"]
        assert (first["model_version"], second["model_version"]) == ("1", version)
    finally:
        import mlflow

        client_ = mlflow.MlflowClient(tracking_uri=serving_home.uri, registry_uri=serving_home.uri)
        client_.set_registered_model_alias("nearx-ranker", "champion", "1")


async def test_no_registry_gives_a_degraded_answer_not_an_error(
    db_url: str, conn: Any, tmp_path: Any, settings: Settings
) -> None:
    from api.app import create_app
    from tests.api.matching.conftest import serving_settings

    empty = serving_settings(tmp_path / "empty-home")
    await insert_city(conn)
    app = create_app(empty, db_url=db_url)
    async with AsyncTestClient(app=app) as client:
        await ready(app)
        _, headers = await _customer(conn, empty)
        response = await client.get("/v1/match", params=AT, headers=headers)
        assert response.status_code == 200
        body = response.json()
        assert body["scoring"]["degraded"] is True
        assert body["scoring"]["degraded_reason"] in {"no_model", "features_unavailable"}
        assert body["scoring"]["model"] is None
        assert body["scoring"]["eta_degraded_reason"] in {"no_model", "features_unavailable"}
        assert len(body["results"]) == 20
        assert all(r["eta"]["p50_s"] <= r["eta"]["p90_s"] for r in body["results"])
        metrics = (await client.get("/metrics")).text
        assert 'nearx_degraded_total{reason="' in metrics or "nearx_degraded_total{" in metrics


async def test_online_store_down_gives_a_degraded_answer(
    app: Litestar, client: Client, conn: Any, settings: Settings, tmp_path: Any
) -> None:
    await insert_city(conn)
    await ready(app)
    down = open_feature_store(tmp_path, online="redis", online_url="redis://127.0.0.1:1/0")
    live = app.state.scoring.online.store
    down.apply([*live.list_entities(), *live.list_feature_views(), *live.list_feature_services()])
    app.state.scoring.online = OnlineFeatures(down)
    _, headers = await _customer(conn, settings)
    body = (await client.get("/v1/match", params=AT, headers=headers)).json()
    assert body["scoring"]["degraded"] is True
    assert body["scoring"]["degraded_reason"] == "features_unavailable"
    assert body["results"]


async def test_over_the_latency_budget_answers_from_the_heuristic(
    app: Litestar, client: Client, conn: Any, settings: Settings
) -> None:
    await insert_city(conn)
    await ready(app)
    app.state.scoring.budget_s = 0.0
    _, headers = await _customer(conn, settings)
    body = (await client.get("/v1/match", params=AT, headers=headers)).json()
    assert body["scoring"]["degraded_reason"] == "over_budget"  # its features had to be read
    assert body["scoring"]["eta_degraded_reason"] == "no_model"  # no ETA champion: nothing to time
    assert len(body["results"]) == 20


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"lat": 91, "lng": 85.3}, 400),
        ({"lat": 27.7, "lng": -181}, 400),
        ({**AT, "limit": 51}, 400),
        ({**AT, "radius_m": 50_000}, 400),
        ({**AT, "category": "Not A Category"}, 400),
        ({**AT, "category": "spaceships"}, 422),
    ],
)
async def test_bad_input_is_a_problem_and_nothing_is_written(
    app: Litestar, client: Client, conn: Any, settings: Settings, params: dict[str, Any], status: int
) -> None:
    await insert_city(conn)
    await ready(app)
    _, headers = await _customer(conn, settings)
    response = await client.get("/v1/match", params=params, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await _events(app, conn, "match.served") == []


async def test_post_rejects_unknown_fields_and_needs_a_customer(
    app: Litestar, client: Client, conn: Any, settings: Settings
) -> None:
    _, headers = await _customer(conn, settings)
    response = await client.post("/v1/match", json={**AT, "colour": "red"}, headers=headers)
    assert response.status_code == 400
    courier = await insert_user(conn, Role.COURIER)
    response = await client.get("/v1/match", params=AT, headers=auth(settings, courier, Role.COURIER))
    assert response.status_code == 403
    assert (await client.get("/v1/match", params=AT)).status_code == 401


async def test_impressions_and_clicks_are_logged_as_events(
    app: Litestar, client: Client, conn: Any, settings: Settings
) -> None:
    await insert_city(conn)
    eco = {str(merchant_id(i)) for i in range(0, MERCHANTS, 2)}
    await conn.execute("UPDATE merchants SET eco_packaging = true WHERE id::text = ANY(%s)", (list(eco),))
    await ready(app)
    user, headers = await _customer(conn, settings)
    favourites = [merchant_id(i) for i in range(MERCHANTS)]
    await conn.execute(
        "INSERT INTO profiles (user_id, favourite_merchants) VALUES (%s, %s)", (user, favourites)
    )
    body = (await client.get("/v1/match", params={**AT, "limit": 5}, headers=headers)).json()
    (served,) = await _events(app, conn, "match.served")
    assert served["match_id"] == body["match_id"]
    assert served["customer_id"] == str(user)
    assert served["model"] == "nearx-ranker"
    assert [(i["merchant_id"], i["position"]) for i in served["impressions"]] == [
        (r["merchant_id"], r["position"]) for r in body["results"]
    ]
    # what the customer saw, for the live lake's impressions (pipelines/live.py)
    assert [(i["distance_m"], i["price_level"], i["rating"]) for i in served["impressions"]] == [
        (r["distance_m"], r["price_level"], r["rating"]) for r in body["results"]
    ]
    assert [i["is_favourite"] for i in served["impressions"]] == [True] * 5  # every merchant is one
    assert [i["eco_packaging"] for i in served["impressions"]] == [
        r["merchant_id"] in eco for r in body["results"]
    ]
    third = body["results"][2]["merchant_id"]
    click = await client.post(
        f"/v1/match/{body['match_id']}/clicks", json={"merchant_id": third}, headers=headers
    )
    assert click.status_code == 201, click.text
    assert click.json()["position"] == 3
    (clicked,) = await _events(app, conn, "match.clicked")
    assert (clicked["merchant_id"], clicked["position"]) == (third, 3)

    not_shown = str(merchant_id(MERCHANTS - 1))
    bad = await client.post(
        f"/v1/match/{body['match_id']}/clicks", json={"merchant_id": not_shown}, headers=headers
    )
    assert bad.status_code == 422
    _, other = await _customer(conn, settings)
    foreign = await client.post(
        f"/v1/match/{body['match_id']}/clicks", json={"merchant_id": third}, headers=other
    )
    assert foreign.status_code == 404
    assert len(await _events(app, conn, "match.clicked")) == 1


async def test_a_runtime_with_nothing_trained_starts_without_importing_heavy_stores(tmp_path: Any) -> None:
    from tests.api.matching.conftest import serving_settings

    runtime = build_runtime(serving_settings(tmp_path))
    await asyncio.to_thread(runtime.refresh)
    assert runtime.online is None
    assert runtime.registry.get("nearx-ranker") is None
    assert "no model registry" in (runtime.registry.status["nearx-ranker"].last_error or "")


async def test_readiness_is_503_until_the_first_poll_has_warmed_the_runtime(
    app: Litestar, client: Client, settings: Settings
) -> None:
    await ready(app)
    warm = await client.get("/readyz")
    assert warm.status_code == 200, warm.text
    assert warm.json() == {"status": "ready", "database": "ok", "scoring": "warm"}
    assert app.state.scoring.online is not None  # the store is open and warmed up

    app.state.scoring = build_runtime(settings)  # a runtime whose first poll has not run yet
    cold = await client.get("/readyz")
    assert cold.status_code == 503
    assert cold.json()["scoring"] == "warming_up"
