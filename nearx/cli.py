"""The ``nearx`` command: the composition root.

Each command imports what it needs inside its body, so ``nearx --help`` stays
fast and the kernel does not depend on the packages it wires together.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

app = typer.Typer(help="NEARX: hyperlocal marketplace platform.", no_args_is_help=True)
db_app = typer.Typer(help="Database: migrations and connection details.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _migrations_dir() -> Path:
    import api

    return Path(api.__file__).resolve().parent / "migrations"


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations (a no-op when the schema is current)."""
    from nearx.migrations import migrate
    from nearx.postgres import database_url
    from nearx.settings import get_settings

    settings = get_settings()
    with database_url(settings.database_url, settings.embedded_pg_dir) as url:
        applied = migrate(url, _migrations_dir())
    typer.echo(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))


@db_app.command("status")
def db_status() -> None:
    """List every migration and when it was applied."""
    from rich.console import Console
    from rich.table import Table

    from nearx.migrations import status
    from nearx.postgres import database_url
    from nearx.settings import get_settings

    settings = get_settings()
    with database_url(settings.database_url, settings.embedded_pg_dir) as url:
        states = status(url, _migrations_dir())
    table = Table("migration", "applied at (UTC)")
    for state in states:
        table.add_row(state.migration_id, state.applied_at.isoformat() if state.applied_at else "pending")
    Console().print(table)


orders_app = typer.Typer(help="Orders: scheduled sweeps.", no_args_is_help=True)
app.add_typer(orders_app, name="orders")


@orders_app.command("sweep")
def orders_sweep() -> None:
    """Cancel merchant orders not accepted in time and release expired stock reservations."""
    import asyncio

    from api.domains.orders.jobs import sweep
    from nearx.postgres import database_url
    from nearx.settings import get_settings

    settings = get_settings()
    with database_url(settings.database_url, settings.embedded_pg_dir) as url:
        cancelled = asyncio.run(sweep(url))
    typer.echo(f"cancelled {cancelled} overdue order(s)")


events_app = typer.Typer(help="Events: the outbox relay.", no_args_is_help=True)
app.add_typer(events_app, name="events")


@events_app.command("relay")
def events_relay(
    once: Annotated[bool, typer.Option(help="Publish what is pending, then exit.")] = False,
) -> None:
    """Publish the outbox at least once, in order per aggregate (to RabbitMQ or Redis Streams when set)."""
    import asyncio

    from api.domains.events.jobs import relay_forever, relay_once
    from nearx.postgres import database_url
    from nearx.settings import get_settings

    settings = get_settings()
    with database_url(settings.database_url, settings.embedded_pg_dir) as url:
        if once:
            typer.echo(f"published {asyncio.run(relay_once(url, settings))} event(s)")
        else:
            asyncio.run(relay_forever(url, settings))


@events_app.command("webhooks")
def events_webhooks() -> None:
    """Turn new events into merchant webhook deliveries and send them (signed, retried with backoff)."""
    import asyncio

    from api.domains.events.jobs import webhooks_once
    from nearx.postgres import database_url
    from nearx.settings import get_settings

    settings = get_settings()
    with database_url(settings.database_url, settings.embedded_pg_dir) as url:
        outcome = asyncio.run(webhooks_once(url, settings))
    typer.echo(
        f"webhooks: {outcome['succeeded']} delivered, {outcome['failed']} failed, "
        f"{outcome['rescheduled']} to retry later"
    )


bookings_app = typer.Typer(help="Bookings: scheduled sweeps.", no_args_is_help=True)
app.add_typer(bookings_app, name="bookings")


@bookings_app.command("sweep")
def bookings_sweep() -> None:
    """Release booking holds that were not confirmed in time."""
    import asyncio

    from api.domains.bookings.jobs import sweep
    from nearx.postgres import database_url
    from nearx.settings import get_settings

    settings = get_settings()
    with database_url(settings.database_url, settings.embedded_pg_dir) as url:
        released = asyncio.run(sweep(url))
    typer.echo(f"released {released} expired hold(s)")


dispatch_app = typer.Typer(help="Delivery dispatch: rounds outside the server.", no_args_is_help=True)
app.add_typer(dispatch_app, name="dispatch")


@dispatch_app.command("run")
def dispatch_run(
    city: Annotated[
        list[str] | None, typer.Option("--city", help="City id; repeat for several (default: all with work).")
    ] = None,
    every: Annotated[float, typer.Option(help="Repeat every this many seconds until interrupted.")] = 0.0,
) -> None:
    """Run a dispatch round per city: open deliveries, expire offers, make new offers."""
    import asyncio

    from api.domains.delivery.scheduler import run_forever, run_once
    from nearx.postgres import database_url
    from nearx.settings import get_settings

    settings = get_settings()
    with database_url(settings.database_url, settings.embedded_pg_dir) as url:
        if every > 0:
            asyncio.run(run_forever(url, every, settings))
            return
        for city_id, report in asyncio.run(run_once(url, city, settings)).items():
            typer.echo(
                f"{city_id}: opened {report.opened}, expired {report.expired}, "
                f"offered {report.offered}, waiting {report.waiting}"
            )


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default NEARX_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default NEARX_PORT).")] = None,
) -> None:
    """Migrate, then serve the API (OpenAPI at /schema, health at /healthz)."""
    from api.domains.notifications.sender import build_sender
    from nearx.migrations import migrate
    from nearx.postgres import database_url
    from nearx.settings import get_settings

    settings = get_settings()
    build_sender(settings)  # production without a real message provider stops here, not at the first sign-in
    with database_url(settings.database_url, settings.embedded_pg_dir) as url:
        migrate(url, _migrations_dir())
        _serve(settings, url, host, port)


def _serve(settings: Settings, url: str, host: str | None, port: int | None) -> None:
    import uvicorn

    from api.app import create_app

    uvicorn.run(
        create_app(settings, db_url=url, run_relay=True, run_dispatch=True, run_sweeps=True),
        host=host or settings.host,
        port=port or settings.port,
    )


DEMO_CITY = "kathmandu"
DEMO_CUSTOMER_PHONE = "+9779801234567"


def _demo_city(city_id: str, seed: int, orders_per_day: int) -> DemoCity:
    """The simulator's entities of ``city_id`` (the same ones ``nearx pipeline run`` simulates for this
    seed and scale) as the demo seeder's records: every merchant, provider and courier, one customer."""
    from api.demo.records import DemoCity, DemoCourier, DemoCustomer, DemoMerchant, DemoProvider
    from pipelines.simulation.cities import CATEGORIES, get_city
    from pipelines.simulation.run import city_entities

    city, entities = get_city(city_id), city_entities(city_id, seed, orders_per_day)
    item_price = {
        category.name: category.item_price_major * city.price_scale * 100 for category in CATEGORIES
    }
    merchants = tuple(
        DemoMerchant(
            source_id=m["merchant_id"],
            name=f"{m['category'].capitalize()} {number} ({city.name} demo)",
            category=m["category"],
            lat=m["lat"],
            lng=m["lng"],
            prep_time_min=max(1, min(720, round(m["prep_median_s"] / 60))),
            item_price_minor=round(item_price[m["category"]] * m["price_level"]),
        )
        for number, m in enumerate(entities.merchants.iter_rows(named=True), start=1)
    )
    providers = tuple(
        DemoProvider(
            source_id=p["provider_id"],
            name=f"{p['skills'][0].capitalize()} {number} ({city.name} demo)",
            skills=tuple(p["skills"]),
            lat=p["lat"],
            lng=p["lng"],
            hourly_rate_minor=int(p["hourly_rate_minor"]),
            work_days=tuple(day - 1 for day in p["work_days"]),  # simulator: 1 = Monday
            start_hour=p["start_hour"],
            end_hour=p["end_hour"],
        )
        for number, p in enumerate(entities.providers.iter_rows(named=True), start=1)
    )
    couriers = tuple(
        DemoCourier(source_id=k["courier_id"], mode=k["mode"], lat=k["home_lat"], lng=k["home_lng"])
        for k in entities.couriers.iter_rows(named=True)
    )
    c = entities.customers.filter(entities.customers["fraud_role"].is_null()).row(0, named=True)
    customer = DemoCustomer(
        source_id=c["customer_id"],
        phone=DEMO_CUSTOMER_PHONE,
        lat=c["lat"],
        lng=c["lng"],
        eco_first=c["eco_preference"] > 0.5,
        price_sensitivity="high"
        if c["price_sensitivity"] > 0.6
        else "low"
        if c["price_sensitivity"] < 0.2
        else "medium",
        favourite_source_id=c["favourite_merchant_id"],
    )
    return DemoCity(city_id, merchants, providers, couriers, customer)


def _seed_demo(settings: Settings, url: str, city: DemoCity) -> SeedReport:
    """Seed ``city`` through the platform's services (idempotent: a second run adds nothing)."""
    import asyncio

    from psycopg import AsyncConnection
    from psycopg.rows import dict_row

    from api.demo.service import seed_city

    async def seed() -> SeedReport:
        async with await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
            return await seed_city(conn, settings, city, progress=lambda line: typer.echo(f"  {line}"))

    return asyncio.run(seed())


demo_app = typer.Typer(
    help="Demo city: seed the live database from the city simulator.", no_args_is_help=True
)
app.add_typer(demo_app, name="demo")
DemoOrdersOption = Annotated[
    int, typer.Option(help="Simulated orders in total; sets the demo city's size (about 1 merchant per 140).")
]
DemoDaysOption = Annotated[int, typer.Option(help="Days of simulated history for the pipeline.")]
DemoSeedOption = Annotated[int, typer.Option(help="Random seed of the simulator.")]


@demo_app.command("seed")
def demo_seed(orders: DemoOrdersOption = 4000, days: DemoDaysOption = 14, seed: DemoSeedOption = 42) -> None:
    """Migrate, then seed the Kathmandu demo city: merchants with products and stock, providers with
    calendars, couriers online, a demo customer (running it again adds nothing)."""
    from nearx.migrations import migrate
    from nearx.postgres import database_url
    from nearx.settings import get_settings

    settings = get_settings()
    spec = _spec([DEMO_CITY], days, orders, None, seed)
    with database_url(settings.database_url, settings.embedded_pg_dir) as url:
        migrate(url, _migrations_dir())
        report = _seed_demo(settings, url, _demo_city(DEMO_CITY, seed, spec.orders_per_day))
    typer.echo(report.summary())


@app.command("up")
def up(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default NEARX_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default NEARX_PORT).")] = None,
    orders: DemoOrdersOption = 4000,
    days: DemoDaysOption = 14,
    seed: DemoSeedOption = 42,
    skip_pipeline: Annotated[
        bool, typer.Option(help="Serve without rebuilding the lake, marts, models and online features.")
    ] = False,
) -> None:
    """The main job end to end: migrate, seed the demo city, run the whole pipeline (marts, features,
    training, online store), then serve the API."""
    from dataclasses import replace

    from rich.console import Console

    from api.domains.notifications.sender import build_sender
    from nearx.migrations import migrate
    from nearx.postgres import database_url
    from nearx.settings import get_settings
    from pipelines.cli import run

    settings = get_settings()
    build_sender(settings)
    spec = _spec([DEMO_CITY], days, orders, None, seed)
    with database_url(settings.database_url, settings.embedded_pg_dir) as url:
        typer.echo("[1/4] migrating the database")
        migrate(url, _migrations_dir())
        typer.echo(f"[2/4] seeding the {DEMO_CITY} demo city through the platform's services")
        typer.echo(
            f"  {_seed_demo(settings, url, _demo_city(DEMO_CITY, seed, spec.orders_per_day)).summary()}"
        )
        if skip_pipeline:
            typer.echo("[3/4] pipeline skipped (--skip-pipeline)")
        else:
            typer.echo(
                f"[3/4] pipeline: {spec.days} days, ~{orders:,} orders -> lake, marts, models, online store"
            )
            if not run(replace(settings, database_url=url), spec, True, Console(), train=True):
                typer.echo("the pipeline failed; fix it or serve with --skip-pipeline", err=True)
                raise typer.Exit(1)
        typer.echo(
            f"[4/4] serving on http://{host or settings.host}:{port or settings.port} "
            f"(sign in as {DEMO_CUSTOMER_PHONE}; the code is in `nearx sandbox messages`)"
        )
        _serve(settings, url, host, port)


if TYPE_CHECKING:
    from api.demo.records import DemoCity
    from api.demo.service import SeedReport
    from nearx.settings import Settings
    from pipelines.simulation.run import SimulationSpec

pipeline_app = typer.Typer(help="Data platform: simulate, build the lake and marts.", no_args_is_help=True)
app.add_typer(pipeline_app, name="pipeline")
marts_app = typer.Typer(help="Analyst marts in DuckDB.", no_args_is_help=True)
app.add_typer(marts_app, name="marts")
CityOption = Annotated[
    list[str] | None, typer.Option("--city", help="City id; repeat for several (default all).")
]
DaysOption = Annotated[int, typer.Option(help="Number of days to simulate.")]
OrdersOption = Annotated[int, typer.Option(help="About this many orders in total.")]
StartOption = Annotated[
    str | None, typer.Option(help="First day, YYYY-MM-DD (default: --days before today).")
]
SeedOption = Annotated[int, typer.Option(help="Random seed: the same seed gives the same data.")]


def _spec(city: list[str] | None, days: int, orders: int, start: str | None, seed: int) -> SimulationSpec:
    from datetime import date

    from pipelines.cli import make_spec

    try:
        return make_spec(city, days, orders, date.fromisoformat(start) if start else None, seed)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


@pipeline_app.command("run")
def pipeline_run(
    city: CityOption = None,
    days: DaysOption = 7,
    orders: OrdersOption = 20_000,
    start: StartOption = None,
    seed: SeedOption = 42,
    fresh: Annotated[bool, typer.Option(help="Delete simulated partitions first.")] = False,
    train: Annotated[
        bool, typer.Option(help="Go on to the ML stage: offline features, training, online store.")
    ] = True,
) -> None:
    """Simulate, stage and build every mart (checks included), then features, models and the online
    store, through Dagster."""
    from rich.console import Console

    from nearx.settings import get_settings
    from pipelines.cli import run

    if not run(get_settings(), _spec(city, days, orders, start, seed), fresh, Console(), train=train):
        raise typer.Exit(1)


@app.command("simulate")
def simulate(
    city: CityOption = None,
    days: DaysOption = 7,
    orders: OrdersOption = 20_000,
    start: StartOption = None,
    seed: SeedOption = 42,
    out: Annotated[Path | None, typer.Option(help="Lake directory (default NEARX_HOME/lake).")] = None,
) -> None:
    """Write simulated history to the Parquet lake (no Dagster)."""
    from nearx.settings import get_settings
    from pipelines.cli import simulate as run_simulation

    summary = run_simulation(get_settings(), _spec(city, days, orders, start, seed), out)
    typer.echo(", ".join(f"{table}: {rows:,}" for table, rows in summary.rows.items()))


@marts_app.command("query")
def marts_query(
    sql: Annotated[str, typer.Argument(help="SQL over the marts, e.g. 'FROM daily_city'.")],
    limit: Annotated[int, typer.Option(help="Rows to print at most.")] = 50,
) -> None:
    """Run read-only SQL against the warehouse and print a table."""
    from rich.console import Console

    from nearx.settings import get_settings
    from pipelines.cli import query

    try:
        query(get_settings(), sql, limit, Console())
    except FileNotFoundError as exc:
        raise typer.BadParameter(str(exc)) from exc


@app.command("ui")
def ui(port: Annotated[int, typer.Option(help="Port for the Dagster UI.")] = 3000) -> None:
    """Open the Dagster UI (dagster dev) on the project's definitions and dagster_home."""
    from nearx.settings import get_settings
    from pipelines.cli import ui as run_ui

    raise typer.Exit(run_ui(get_settings(), port))


identity_app = typer.Typer(help="Identity: housekeeping of sign-in state.", no_args_is_help=True)
app.add_typer(identity_app, name="identity")


@identity_app.command("purge")
def identity_purge() -> None:
    """Delete expired one-time codes, second-factor tickets, OIDC flows and dead refresh tokens."""
    import asyncio

    from psycopg import AsyncConnection
    from psycopg.rows import dict_row

    from api.domains.identity.service import purge_expired
    from nearx.postgres import database_url
    from nearx.settings import get_settings

    settings = get_settings()

    async def purge(url: str) -> dict[str, int]:
        async with await AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
            return await purge_expired(conn, settings)

    with database_url(settings.database_url, settings.embedded_pg_dir) as url:
        deleted = asyncio.run(purge(url))
    typer.echo(", ".join(f"{table}: {count} deleted" for table, count in deleted.items()))


sandbox_app = typer.Typer(
    help="Sandbox mode: inspect what the platform would have sent.", no_args_is_help=True
)
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("messages")
def sandbox_messages(
    limit: Annotated[int, typer.Option(min=1, help="How many of the latest messages to show.")] = 20,
    destination: Annotated[
        str | None, typer.Option(help="Only messages to this phone (E.164) or email address.")
    ] = None,
) -> None:
    """The latest messages in the sandbox outbox (sign-in codes included), newest first."""
    from rich.console import Console
    from rich.table import Table

    from api.domains.identity.destinations import infer_channel, normalise
    from api.domains.notifications.sandbox import read_messages
    from api.errors import InvalidInput
    from nearx.settings import get_settings

    settings = get_settings()
    if settings.mode != "sandbox":
        typer.echo("the sandbox outbox exists only in sandbox mode (NEARX_MODE=sandbox)", err=True)
        raise typer.Exit(1)
    if destination is not None:
        try:  # the same spelling the sign-in stored: E.164, lower-cased email
            destination = normalise(infer_channel(destination), destination)
        except InvalidInput as exc:
            raise typer.BadParameter(exc.detail, param_hint="--destination") from exc
    messages = read_messages(settings.sandbox_outbox_path, limit=limit, destination=destination)
    if not messages:
        typer.echo(f"no messages in {settings.sandbox_outbox_path}")
        return
    table = Table("sent at (UTC)", "channel", "destination", "template", "message")
    for message in messages:
        table.add_row(message.sent_at, message.channel, message.destination, message.template, message.body)
    Console(width=200).print(table)


payments_app = typer.Typer(help="Payments: reconciliation with the providers.", no_args_is_help=True)
app.add_typer(payments_app, name="payments")


@payments_app.command("reconcile")
def payments_reconcile(
    older_than_s: Annotated[
        int, typer.Option(help="Only settle operations untouched for this many seconds (in-flight calls).")
    ] = 120,
) -> None:
    """Capture finished orders (split settlement); ask providers about payments left unknown by
    timeouts; send requested refunds; void expired holds."""
    import asyncio
    from datetime import timedelta

    from api.domains.payments.jobs import capture_orders_database, reconcile_database
    from nearx.postgres import database_url
    from nearx.settings import get_settings

    settings = get_settings()
    with database_url(settings.database_url, settings.embedded_pg_dir) as url:
        orders = asyncio.run(capture_orders_database(url))
        report = asyncio.run(reconcile_database(url, older_than=timedelta(seconds=older_than_s)))
    typer.echo(
        f"captured {orders.captured} finished order(s), voided {orders.voided}, "
        f"{orders.unsettled} left for a person; "
        f"settled {report.intents_settled} intent(s), {report.refunds_settled} refund(s); "
        f"dispatched {report.refunds_dispatched} requested refund(s); "
        f"voided {report.authorizations_expired} expired authorization(s); "
        f"{report.still_unknown} still unknown"
    )


payouts_app = typer.Typer(help="Payouts: settlement batches to merchants and couriers.", no_args_is_help=True)
payments_app.add_typer(payouts_app, name="payouts")


@payouts_app.command("run")
def payments_payouts_run(
    currency: Annotated[str, typer.Option(help="ISO currency of the payables to settle.")] = "NPR",
    period_end: Annotated[
        str | None,
        typer.Option(
            help="Settle entries posted before this ISO instant (UTC if no offset); default: today 00:00 UTC."
        ),
    ] = None,
    min_payout_minor: Annotated[
        int | None, typer.Option(help="Smallest payout in minor units; default NEARX_PAYOUT_MIN_MINOR.")
    ] = None,
) -> None:
    """Pay merchants and couriers their payable balances for one period (a period runs once)."""
    import asyncio
    from datetime import UTC, datetime

    from api.domains.payments.jobs import run_payouts_database
    from api.domains.payments.payouts import default_period_end
    from nearx.postgres import database_url
    from nearx.settings import get_settings

    settings = get_settings()
    end = default_period_end()
    if period_end is not None:
        try:
            end = datetime.fromisoformat(period_end)
        except ValueError as exc:
            raise typer.BadParameter(f"not an ISO date or instant: {period_end!r}") from exc
        end = end if end.tzinfo is not None else end.replace(tzinfo=UTC)
    minimum = settings.payout_min_minor if min_payout_minor is None else min_payout_minor
    with database_url(settings.database_url, settings.embedded_pg_dir) as url:
        run = asyncio.run(
            run_payouts_database(url, currency=currency, period_end=end, min_payout_minor=minimum)
        )
    verb = "created" if run.created else "already ran:"
    typer.echo(
        f"{verb} batch {run.batch['id']} for {currency} before {end.isoformat()}: "
        f"{run.paid} payout(s), {run.total_minor} minor units; "
        f"{run.held} held, {run.below_minimum} below the minimum"
    )


models_app = typer.Typer(help="Models: evaluate on your own data.", no_args_is_help=True)
app.add_typer(models_app, name="models")
mlflow_app = typer.Typer(help="MLflow: the project's runs and registered models.", no_args_is_help=True)
app.add_typer(mlflow_app, name="mlflow")


@models_app.command("evaluate")
def models_evaluate(
    model: Annotated[str, typer.Argument(help="eta or fraud.")],
    data: Annotated[Path, typer.Option("--data", help="Your history, .csv or .parquet (docs/models.md).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Train and evaluate a model on your file (time-ordered holdout) and compare it with the baselines."""
    import json

    from rich.console import Console
    from rich.table import Table

    from models.byod import EVALUATORS, DataError, read_table

    if model not in EVALUATORS:
        raise typer.BadParameter(f"choose one of {', '.join(sorted(EVALUATORS))}", param_hint="MODEL")
    try:
        metrics = EVALUATORS[model](read_table(data))
    except DataError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(metrics, indent=2, sort_keys=True))
        return
    table = Table("metric", "value", title=f"{model}: model vs baselines on the newest 20% of rows")
    for name, value in metrics.items():
        table.add_row(name, f"{value:,.4f}")
    Console().print(table)


@mlflow_app.command("ui")
def mlflow_ui(port: Annotated[int, typer.Option(help="Port for the MLflow UI.")] = 5000) -> None:
    """Open the MLflow UI on the project's tracking store (SQLite and artifacts under NEARX_HOME)."""
    import subprocess
    import sys

    from models.tracking import artifact_root, tracking_uri
    from nearx.settings import get_settings

    settings = get_settings()
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri(settings)]
    command += ["--default-artifact-root", artifact_root(settings).as_uri(), "--port", str(port)]
    raise typer.Exit(subprocess.call(command))
