"""The scoring runtime one API process holds: models, online features, scorers, background poll.

Started in the API's lifespan and stored in ``app.state.scoring``. Start-up never waits on
MLflow or Feast: the first poll runs in a worker thread, and until a champion is loaded (or
whenever the registry or the online store is down) every answer comes from the fallbacks.
Heavy libraries (mlflow, feast) are imported only when their stores exist.

Warm-up: a champion makes one throwaway prediction before it is swapped in (the registry),
and the online features make one throwaway store read per batch view of every served
FeatureService before requests see them (:meth:`ScoringRuntime.refresh`), so the first
request is not the one paying Feast's and LightGBM's first-call costs (100-300 ms, over the
50 ms budget). :attr:`ScoringRuntime.warmed` turns true when the first poll has finished;
``/readyz`` reports it.

Each async entry point runs its scorer on the scoring lane (:mod:`serving.budget`: two
threads, at most four calls in flight) under a latency budget. Over the budget the request
gets the heuristic (``degraded = "over_budget"``) and a call already running still
completes, warming the feature cache; with every slot taken a request gets the heuristic at
once (``degraded = "shed"``) instead of queueing behind late work. Match and ETA scoring
first try on the event loop with features from the process cache only
(:meth:`ScoringRuntime.warm_or_within_budget`): a warm request does no I/O and costs less
than the lane's thread handoff; one that must read a row takes the lane.

Feature freshness: a second background task re-reads the online rows requests asked for
before they age out (:meth:`OnlineFeatures.refresh_hot`, every quarter of the bound), so
requests read the cache instead of Feast.

Warm behind a miss: a third task, every :data:`WARM_BEHIND_S`, reads the rows that warm
tries were refused for (:meth:`OnlineFeatures.warm_missed`, in a worker thread). Under load
the lane sheds exactly the requests that must read a row, so without it a cold process
would stay cold; with it, a shed request still warms its rows for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from models.native_trees import TreeCompiler
from nearx.routing import HaversineRouting, RoutingProvider, routing_provider
from nearx.settings import Settings
from serving import eta, fraud, match, metrics
from serving.budget import Saturated, ScoringLane
from serving.online import FeaturesUnavailable, NotCached, OnlineFeatures, RedisCache
from serving.registry import MlflowSource, ModelRegistry, ModelSpec, RegistrySource

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_BUDGET_S = 0.05
DEFAULT_FRESHNESS_S = 300.0
DEFAULT_POLL_S = 30.0
WARM_BEHIND_S = 0.25
"""How soon the rows a refused warm try lacked are read (a batch per view, off the request path)."""


def service_features(name: str) -> tuple[str, ...]:
    """The features a FeatureService delivers, from the repo's definitions (no store needed)."""
    from features.services import SERVICES

    (service,) = [s for s in SERVICES if s.name == name]
    return tuple(f.name for projection in service.feature_view_projections for f in projection.features)


def default_specs() -> dict[str, Callable[[], ModelSpec]]:
    """The served models and what their scorers supply, built lazily (it imports Feast)."""
    return {
        match.RANKER_MODEL: lambda: match.ranker_spec(service_features(match.RANKER_SERVICE)),
        eta.ETA_MODEL: lambda: eta.eta_spec(service_features(eta.ETA_SERVICE), eta.request_feature_names()),
        eta.GREEN_MODEL: lambda: eta.green_spec(
            service_features(eta.GREEN_SERVICE), eta.request_feature_names()
        ),
        fraud.FRAUD_MODEL: lambda: fraud.fraud_spec(service_features(fraud.FRAUD_SERVICE)),
    }


SCORER_SERVICES = {
    match.RANKER_MODEL: match.RANKER_SERVICE,
    eta.ETA_MODEL: eta.ETA_SERVICE,
    eta.GREEN_MODEL: eta.GREEN_SERVICE,
    fraud.FRAUD_MODEL: fraud.FRAUD_SERVICE,
}
"""Each served model and the FeatureService its scorer reads when the champion names none."""
WARM_UP_CITY = "default"
"""The city the first poll builds a routing provider for (the provider's load is what counts)."""


@dataclass
class ScoringRuntime:
    registry: ModelRegistry
    open_store: Callable[[], Any | None]
    """Opens the Feast store, or None while there is none (called on each poll until it works)."""
    freshness_s: float = DEFAULT_FRESHNESS_S
    redis_url: str | None = None
    budget_s: float = DEFAULT_BUDGET_S
    poll_interval_s: float = DEFAULT_POLL_S
    routing: Callable[[str, str], RoutingProvider] = HaversineRouting
    """The routing provider of a city (``city_id``, ``timezone``): ``NEARX_ROUTING`` picks it."""
    online: OnlineFeatures | None = None
    """The online features requests read: None until the store exists and has been warmed up."""
    warmed: bool = False
    """The first poll has finished: what existed of models and features then is loaded and warm."""
    _warm_services: set[str] = field(default_factory=set, repr=False)
    _refreshing: threading.Lock = field(default_factory=threading.Lock, repr=False)
    lane: ScoringLane = field(default_factory=ScoringLane)
    """The bounded executor request-time scoring runs on (shed, never queue)."""
    _task: asyncio.Task[None] | None = field(default=None, repr=False)
    _freshen_task: asyncio.Task[None] | None = field(default=None, repr=False)
    _warm_behind_task: asyncio.Task[None] | None = field(default=None, repr=False)
    _eta: dict[tuple[str, str, str], eta.EtaScorer] = field(default_factory=dict, repr=False)

    @property
    def match_scorer(self) -> match.MatchScorer:
        return match.MatchScorer(self.registry, self.online)

    @property
    def fraud_scorer(self) -> fraud.FraudScorer:
        return fraud.FraudScorer(self.registry, self.online)

    def eta_scorer(self, city_id: str, timezone: str, country: str) -> eta.EtaScorer:
        key = (city_id, timezone, country)
        scorer = self._eta.get(key)
        if scorer is None or scorer.online is not self.online:
            scorer = eta.EtaScorer(self.registry, self.online, self.routing(city_id, timezone), country)
            self._eta[key] = scorer
        return scorer

    def refresh(self) -> None:
        """One poll (blocking): reload moved aliases (each new version warmed before its swap), open
        the feature store if it appeared, sync caches, and warm up the served services before
        requests read them. Until the store's first warm-up is done, requests get the fallbacks.
        Polls run one at a time: a second caller waits, then finds the work done."""
        with self._refreshing:
            self._refresh()

    def _refresh(self) -> None:
        try:
            self.registry.refresh()
            online = self.online or self._open_online()
            if online is not None:
                try:
                    online.sync()
                except FeaturesUnavailable as exc:
                    log.warning("feature registry unavailable: %s", exc)
                self._warm_up(online)
                self.online = online
            if not self.warmed:
                # a road graph (NEARX_ROUTING=graph) is parsed once per process, in seconds: here, not
                # in the event loop of the first request that asks for an ETA
                self.routing(WARM_UP_CITY, "UTC")
                # what is loaded by now (models, Feast, MLflow, the road graph) lives as long as the
                # process: out of the collector's sight, a full collection walks request garbage
                # instead of ~750k long-lived objects (70-300 ms a pass, a request's tail latency)
                gc.freeze()
        finally:
            self.warmed = True

    def _open_online(self) -> OnlineFeatures | None:
        store = self.open_store()
        if store is None:
            return None
        shared = RedisCache(self.redis_url) if self.redis_url else None
        return OnlineFeatures(store, freshness_s=self.freshness_s, shared=shared, refresh_ahead=True)

    def served_services(self) -> list[str]:
        """The FeatureServices requests read: each scorer's default and each champion's own."""
        services = dict.fromkeys(SCORER_SERVICES.values())
        for name in SCORER_SERVICES:
            model = self.registry.get(name)
            if model is not None and model.feature_service:
                services[model.feature_service] = None
        return list(services)

    def _warm_up(self, online: OnlineFeatures) -> None:
        """Read each served service not yet warm once; one that fails is retried on the next poll."""
        for service in self.served_services():
            if service in self._warm_services:
                continue
            try:
                online.warm_up(service)
            except FeaturesUnavailable as exc:
                log.warning("warm-up of %s failed: %s", service, exc)
                continue
            self._warm_services.add(service)

    async def _poll(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:  # the poller must outlive any one failure; answers degrade meanwhile
                log.exception("scoring runtime poll failed")
            await asyncio.sleep(self.poll_interval_s)

    async def _keep_fresh(self) -> None:
        """Refresh ahead the online rows requests read, every quarter of the freshness bound."""
        while True:
            await asyncio.sleep(self.freshness_s / 4)
            online = self.online
            if online is None:
                continue
            try:
                await asyncio.to_thread(online.refresh_hot)
            except FeaturesUnavailable as exc:  # requests read through to Feast meanwhile
                log.warning("feature refresh failed: %s", exc)
            except Exception:  # like the poller, the task must outlive any one failure
                log.exception("feature refresh failed")

    async def _warm_behind(self) -> None:
        """Read the rows refused cached-only reads lacked, soon after (a thread only when there are some)."""
        while True:
            await asyncio.sleep(WARM_BEHIND_S)
            online = self.online
            if online is None or not online.missed:
                continue
            try:
                await asyncio.to_thread(online.warm_missed)
            except FeaturesUnavailable as exc:  # those rows are read through by later requests instead
                log.warning("warming missed features failed: %s", exc)
                await asyncio.sleep(self.poll_interval_s)  # an outage: retry at the poll's pace
            except Exception:  # like the poller, the task must outlive any one failure
                log.exception("warming missed features failed")
                await asyncio.sleep(self.poll_interval_s)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._poll(), name="scoring-runtime-poll")
        self._freshen_task = loop.create_task(self._keep_fresh(), name="scoring-runtime-freshen")
        self._warm_behind_task = loop.create_task(self._warm_behind(), name="scoring-runtime-warm-behind")

    async def stop(self) -> None:
        for task in (self._task, self._freshen_task, self._warm_behind_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.lane.close()
        self.registry.close()
        gc.unfreeze()  # what the warm-up froze is collectable again (tests start many runtimes)

    async def within_budget(self, work: Callable[[], T], fallback: Callable[[str], T], scorer: str) -> T:
        """``work()`` on the scoring lane if it finishes within the budget, else ``fallback(reason)``:
        ``over_budget`` when it ran out of time, ``shed`` when the lane had no free slot."""
        try:
            return await self.lane.run(work, self.budget_s)
        except TimeoutError:
            reason = "over_budget"
        except Saturated:
            reason = "shed"
        metrics.DEGRADED.labels(scorer, reason).inc()
        return fallback(reason)

    async def warm_or_within_budget(
        self, work: Callable[[bool], T], fallback: Callable[[str], T], scorer: str
    ) -> T:
        """``work(True)`` right here when it needs no I/O, else ``work(False)`` under the budget.

        ``work(cached_only)`` must raise :class:`~serving.online.NotCached`, before doing any
        I/O, when it would have to read a feature row from outside the process. A warm request
        is pure computation, a fraction of a millisecond with native trees, which is less than
        handing it to a lane thread and back costs; so it runs on the event loop, and only
        requests that must read Redis or Feast take the lane, its budget and its shedding.
        """
        try:
            return work(True)
        except NotCached:
            return await self.within_budget(lambda: work(False), fallback, scorer)

    async def rank(self, candidates: match.Candidates, customer: match.Customer) -> match.Ranking:
        scorer = self.match_scorer

        def fallback(reason: str) -> match.Ranking:
            scores = match.heuristic_scores(candidates, customer, None)
            return match._ranked(scores, None, None, reason, {})

        return await self.warm_or_within_budget(
            lambda cached_only: scorer.rank(candidates, customer, cached_only=cached_only), fallback, "match"
        )

    async def score_fraud(self, request: fraud.FraudRequest) -> fraud.FraudScore | str:
        """The fraud model's verdict within the budget, or the degraded reason for the caller's rules."""
        scorer = self.fraud_scorer
        return await self.within_budget(lambda: scorer.score(request), lambda reason: reason, "fraud")


def feast_opener(settings: Settings) -> Callable[[], Any | None]:
    """Open the installation's Feast store once its registry exists (the pipelines create it)."""

    def open_store() -> Any | None:
        if not feast_registry_path(settings).is_file():
            return None  # checked before importing Feast, which costs seconds
        from features.store import open_store as open_feast

        return open_feast(settings)

    return open_store


def build_runtime(
    settings: Settings,
    *,
    source: RegistrySource | None = None,
    open_store: Callable[[], Any | None] | None = None,
    budget_s: float | None = None,
    poll_interval_s: float = DEFAULT_POLL_S,
    freshness_s: float | None = None,
) -> ScoringRuntime:
    """The runtime of ``settings`` (its budget is ``NEARX_SCORING_BUDGET_MS`` and its freshness
    bound ``NEARX_FEATURE_FRESHNESS_S`` unless given)."""
    registry = ModelRegistry(
        source or MlflowSource(tracking_uri(settings)),
        default_specs(),
        compiler=TreeCompiler(compiled_dir(settings)) if settings.native_trees else None,
    )
    return ScoringRuntime(
        registry=registry,
        open_store=open_store or feast_opener(settings),
        freshness_s=settings.feature_freshness_s if freshness_s is None else freshness_s,
        redis_url=settings.redis_url,
        routing=functools.partial(routing_provider, settings),
        budget_s=settings.scoring_budget_ms / 1000 if budget_s is None else budget_s,
        poll_interval_s=poll_interval_s,
    )


def compiled_dir(settings: Settings) -> Path:
    """Where served forests' native code is cached (:mod:`models.native_trees`), one file per model."""
    return settings.home / "compiled"


def feast_registry_path(settings: Settings) -> Path:
    """Where ``features.store`` keeps the Feast registry (a test pins them equal)."""
    return settings.home / "feast" / "registry.db"


def tracking_uri(settings: Settings) -> str:
    """``models.tracking.tracking_uri`` without importing MLflow at API start-up (a test pins them equal)."""
    return f"sqlite:///{settings.home / 'mlflow' / 'mlflow.db'}"


@contextlib.asynccontextmanager
async def scoring_runtime(settings: Settings, **options: Any) -> AsyncIterator[ScoringRuntime]:
    runtime = build_runtime(settings, **options)
    runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()
