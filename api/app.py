"""The Litestar application factory.

``create_app`` wires settings, the connection pool (opened in the lifespan),
authentication, problem-details errors and every bounded context's routes.
Nothing here runs at import time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsPlugin

from api.dependencies import DEPENDENCIES
from api.domains.bookings import jobs as bookings_jobs
from api.domains.delivery.eta import plug_predictor
from api.domains.delivery.live import running_feed
from api.domains.delivery.scheduler import delivery_jobs
from api.domains.events.jobs import background_webhooks
from api.domains.events.relay import background_relay
from api.domains.matching.index import running_index
from api.domains.orders import jobs as orders_jobs
from api.domains.payments.fraud import RulesFraudScorer
from api.domains.payments.marketplace import BookingDeposits, OrderRefunds
from api.domains.scoring.dispatch import model_predictors
from api.domains.scoring.eta import ServingPromiser
from api.domains.scoring.fraud import ServingFraudScorer
from api.errors import DomainError, domain_error_handler, http_exception_handler, unexpected_error_handler
from api.routes import ROUTE_HANDLERS
from api.security.middleware import BearerAuthenticationMiddleware
from api.security.revocations import running_revocations
from api.security.tokens import TokenCodec
from api.strict_body import reject_lax_json
from nearx.db import create_pool
from nearx.event_buffer import running_event_buffer
from nearx.postgres import database_url
from nearx.settings import Settings, get_settings
from serving.runtime import scoring_runtime


def create_app(
    settings: Settings | None = None,
    *,
    db_url: str | None = None,
    run_relay: bool = False,
    run_dispatch: bool = False,
    run_sweeps: bool = False,
) -> Litestar:
    """Build the API. ``db_url`` overrides the settings (tests point it at a throwaway database).

    ``run_relay`` also runs the outbox relay in-process for the app's lifetime (``nearx serve``),
    ``run_dispatch`` the delivery jobs (rounds, support alerts, claims), ``run_sweeps`` the
    order accept-timeout and booking-hold sweeps and the webhook sender, each on its own interval.
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            url = db_url or stack.enter_context(database_url(settings.database_url, settings.embedded_pg_dir))
            pool = create_pool(
                url,
                min_size=settings.db_pool_min_size,
                max_size=settings.db_pool_max_size,
                timeout_s=settings.db_pool_timeout_s,
            )
            await pool.open(wait=True, timeout=settings.db_pool_timeout_s)
            stack.push_async_callback(pool.close)
            app.state.pool = pool
            app.state.database_url = url
            # identity: this worker's revoked sessions, so authentication skips the database
            app.state.revocations = await stack.enter_async_context(running_revocations(pool, settings))
            # standalone events of hot paths (match.served), written in batches (nearx.event_buffer)
            app.state.events = await stack.enter_async_context(running_event_buffer(pool))
            # matching: the merchant index (watched) and the scoring runtime (models, online features)
            app.state.matching_index = await stack.enter_async_context(running_index(pool))
            app.state.scoring = await stack.enter_async_context(scoring_runtime(settings))
            # payments: the marketplace's refund and deposit ports, and the confirm route's fraud scorer
            app.state.refund_gateway = OrderRefunds()
            app.state.deposit_gateway = BookingDeposits()
            app.state.fraud_scorer = ServingFraudScorer(app.state.scoring, rules=RulesFraudScorer())
            # orders: the checkout's fraud check (the same model) and its ETA promise, from serving
            app.state.checkout_risk = app.state.fraud_scorer
            app.state.eta_promiser = ServingPromiser(app.state.scoring)
            # delivery: dispatch costs and the door ETA from the ETA and green models
            plug_predictor(model_predictors(app.state.scoring))
            stack.callback(plug_predictor, None)
            # delivery: this worker's live-tracking feed (WebSocket fan-out from the event bus)
            app.state.live = await stack.enter_async_context(running_feed(url, settings))
            if run_sweeps:
                # marketplace: expiry without a cron (orders not accepted in time, stale booking holds),
                # and webhooks, whose consumer group exists before the relay publishes
                await stack.enter_async_context(
                    orders_jobs.background_sweep(pool, settings.orders_sweep_interval_s)
                )
                await stack.enter_async_context(
                    bookings_jobs.background_sweep(pool, settings.bookings_sweep_interval_s)
                )
                await stack.enter_async_context(background_webhooks(pool, settings))
            if run_relay:
                await stack.enter_async_context(background_relay(url, settings))
            if run_dispatch:
                await stack.enter_async_context(delivery_jobs(pool, settings))
            yield

    exception_handlers: dict[Any, Any] = {
        DomainError: domain_error_handler,
        HTTPException: http_exception_handler,
        Exception: unexpected_error_handler,
    }
    return Litestar(
        route_handlers=ROUTE_HANDLERS,
        dependencies=DEPENDENCIES,
        lifespan=[lifespan],
        state=State({"settings": settings, "token_codec": TokenCodec(settings)}),
        middleware=[
            DefineMiddleware(
                BearerAuthenticationMiddleware,
                exclude=["^/schema", "^/healthz$"],
                exclude_from_auth_key="public",
            )
        ],
        exception_handlers=exception_handlers,
        before_request=reject_lax_json,
        plugins=[ProblemDetailsPlugin(ProblemDetailsConfig(enable_for_all_http_exceptions=False))],
        openapi_config=OpenAPIConfig(
            title="NEARX API",
            version="1.0.0",
            path="/schema",
            components=Components(
                security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
            ),
            security=[{"bearer": []}],
        ),
        debug=False,
    )
