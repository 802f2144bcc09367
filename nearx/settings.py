"""Typed platform settings, read from ``NEARX_*`` environment variables once.

Every knob has a documented default that works on a fresh machine (embedded
PostgreSQL, sandbox messaging, SQLite online store). ``get_settings()`` caches
the result; nothing reads the environment at import time. Tests build their own
``Settings`` with :func:`load_settings` and an explicit mapping.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

import msgspec

_PREFIX = "NEARX_"
_PROJECT_ROOT = Path(__file__).resolve().parent.parent

Mode = Literal["sandbox", "production"]
MIN_SECRET_LENGTH = 32
"""HS256 keys shorter than the hash output are brute-forceable (RFC 7518, section 3.2)."""


class SettingsError(ValueError):
    """A ``NEARX_*`` variable is missing, malformed or unsafe for the chosen mode."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One JWT signing secret; ``kid`` travels in the token header so keys can rotate."""

    kid: str
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Settings:
    """All platform settings. Field ``foo_bar`` is read from ``NEARX_FOO_BAR``."""

    mode: Mode = "sandbox"
    """``sandbox`` delivers messages to a local inspectable outbox and uses sandbox gateways;
    ``production`` refuses to start without real keys and providers."""
    home: Path = _PROJECT_ROOT / ".nearx"
    """Where local state lives: embedded PostgreSQL, lake, marts, MLflow, sandbox outbox."""
    database_url: str | None = None
    """A PostgreSQL URL; unset means the embedded server (pgserver) under ``home/pg``."""
    db_pool_min_size: int = 1
    db_pool_max_size: int = 10
    db_pool_timeout_s: float = 10.0
    host: str = "127.0.0.1"
    port: int = 8000
    redis_url: str | None = None
    """Turns on the Redis-backed options (event bus, Feast online store) when set."""
    feast_online: Literal["sqlite", "redis", "postgres"] | None = None
    """The Feast online store; unset means Redis when ``NEARX_REDIS_URL`` is set, else SQLite under
    ``home/feast``. ``postgres`` keeps online features in PostgreSQL (schema ``feast_online``)."""
    feast_postgres_url: str | None = None
    """The PostgreSQL online store's database; unset means ``NEARX_DATABASE_URL``."""

    jwt_keys: str = ""
    """``kid:secret`` pairs separated by commas; the first signs, all verify (rotation by kid)."""
    jwt_issuer: str = "nearx"
    jwt_audience: str = "nearx-api"
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 24 * 3600
    revocation_poll_s: float = 1.0
    """How often each API worker reads the sessions other workers revoked: a revoked session's
    access tokens stop working there within this interval (at once in the worker that revoked
    it). A list not refreshed for 5 intervals is bypassed for a per-request database check;
    0 turns the list off (every request asks the database)."""
    secret_pepper: str = ""
    """Server-side key for hashing one-time codes and tokens, and for encrypting TOTP secrets."""

    otp_ttl_s: int = 300
    otp_max_attempts: int = 5
    otp_requests_per_destination_per_hour: int = 5
    otp_requests_per_ip_per_hour: int = 30
    oidc_providers: str = ""
    """OpenID Connect providers as JSON: ``{"name": {"issuer", "client_id", "client_secret",
    "redirect_uri", and either "discovery_url" or "authorization_endpoint", "token_endpoint",
    "jwks_uri"; optional "scopes"}}``. Empty means OIDC sign-in is off."""
    oidc_starts_per_ip_per_hour: int = 30
    """OIDC sign-ins one client address may start per hour (each stores a pending flow)."""

    h3_resolutions: tuple[int, ...] = (7, 9)
    """H3 resolutions stored beside every point: 7 (~5 km², city zones) and 9 (~0.1 km², blocks)."""

    stripe_secret_key: str = field(default="", repr=False)
    """Turns the Stripe gateway on when set (with ``stripe_webhook_secret``); sandbox otherwise."""
    stripe_webhook_secret: str = field(default="", repr=False)
    stripe_base_url: str = "https://api.stripe.com"
    phonepe_merchant_id: str = ""
    """Turns the PhonePe gateway on when set (with the salt key and index)."""
    phonepe_salt_key: str = field(default="", repr=False)
    phonepe_salt_index: int = 1
    phonepe_base_url: str = "https://api.phonepe.com/apis/hermes"
    payments_public_url: str = "http://127.0.0.1:8000"
    """Where providers send customers back and post callbacks (``/v1/payment-webhooks/...``)."""
    payout_min_minor: int = 100_00
    """The smallest payout in minor units; a smaller payable balance waits for a later period."""

    order_accept_timeout_s: int = 600
    """A merchant order not accepted within this time is cancelled by the sweep and its stock released."""
    booking_hold_s: int = 600
    """How long a booking holds its slot before it must be confirmed (with the deposit)."""
    events_relay_interval_s: float = 1.0
    """Polling interval of the outbox relay (it also wakes on NOTIFY)."""
    dispatch_interval_s: float = 5.0
    """Seconds between the dispatch rounds ``nearx serve`` runs for every city with open work; 0 disables."""
    scoring_budget_ms: float = 50.0
    """Latency budget of one scoring call (match, ETA, fraud); past it the request is answered by the
    documented heuristic and marked ``over_budget``."""
    feature_freshness_s: float = 300.0
    """Serving's freshness bound: an online feature value served was read from the Feast online store
    at most this long before. New materialisations are picked up sooner, on the runtime's poll;
    the bound covers writes the registry does not record (pushes). Refresh-ahead work scales with
    its inverse (``docs/serving.md``)."""
    native_trees: bool = True
    """Served LightGBM forests run as native code, compiled in a child process when a version loads
    (its booster scores until then) and cached under ``home/compiled``; false keeps LightGBM."""
    support_email: str = "support@nearx.local"
    """Where SOS and delivery-problem alerts go (through the notifications sender)."""
    routing: Literal["haversine", "graph"] = "haversine"
    """Routing provider: ``haversine`` (straight line x city circuity) or ``graph`` (shortest paths
    on the OpenStreetMap extract at ``routing_pbf``, see ``nearx/roadgraph.py``)."""
    routing_pbf: Path | None = None
    """The ``.osm.pbf`` extract the ``graph`` provider reads (one region per deployment)."""
    rabbitmq_url: str | None = field(default=None, repr=False)
    """Makes the relay publish to RabbitMQ (``amqp://user:pass@host/vhost``); it wins over Redis."""
    rabbitmq_exchange: str = "nearx.events"
    """The durable topic exchange events are published to (routing key = event type)."""
    orders_sweep_interval_s: float = 30.0
    """How often ``nearx serve`` cancels overdue unaccepted orders; 0 leaves it to ``nearx orders sweep``."""
    bookings_sweep_interval_s: float = 30.0
    """How often ``nearx serve`` releases expired booking holds; 0 leaves it to ``nearx bookings sweep``."""
    webhooks_interval_s: float = 5.0
    """How often ``nearx serve`` fans events out to webhooks and sends them; 0 leaves it to the CLI."""

    s3_bucket: str | None = None
    """Stores uploads in this S3-compatible bucket instead of ``home/objects`` when set."""
    s3_endpoint_url: str | None = None
    """The S3 API endpoint (MinIO, R2, ...); unset means AWS S3 itself."""
    s3_region: str | None = None
    s3_access_key_id: str | None = field(default=None, repr=False)
    """S3 credentials from the environment; unset falls back to boto3's chain (``AWS_*``, instance role)."""
    s3_secret_access_key: str | None = field(default=None, repr=False)

    @property
    def signing_keys(self) -> tuple[SigningKey, ...]:
        """The parsed JWT keys; in sandbox mode a per-installation key when none is configured."""
        if self.jwt_keys:
            pairs = [item.split(":", 1) for item in self.jwt_keys.split(",") if item.strip()]
            if any(len(pair) != 2 or not pair[0] or not pair[1] for pair in pairs):
                raise SettingsError("NEARX_JWT_KEYS must be 'kid:secret[,kid:secret...]'")
            keys = tuple(SigningKey(kid.strip(), secret.strip()) for kid, secret in pairs)
            if any(len(key.secret) < MIN_SECRET_LENGTH for key in keys):
                raise SettingsError(
                    f"each JWT secret needs at least {MIN_SECRET_LENGTH} characters (RFC 7518)"
                )
            return keys
        return (SigningKey("sandbox", _sandbox_secret(self.home, "jwt")),)

    @property
    def pepper(self) -> str:
        """The hashing pepper; sandbox installations get a generated one kept under ``home``."""
        return self.secret_pepper or _sandbox_secret(self.home, "pepper")

    @property
    def embedded_pg_dir(self) -> Path:
        return self.home / "pg"

    @property
    def sandbox_outbox_path(self) -> Path:
        return self.home / "sandbox" / "messages.jsonl"

    def validate(self) -> Settings:
        """Reject combinations that are unsafe: production needs explicit keys and a database."""
        if self.mode == "production":
            missing = [
                name
                for name, value in (
                    ("NEARX_JWT_KEYS", self.jwt_keys),
                    ("NEARX_SECRET_PEPPER", self.secret_pepper),
                    ("NEARX_DATABASE_URL", self.database_url),
                )
                if not value
            ]
            if missing:
                raise SettingsError(f"production mode requires {', '.join(missing)}")
        if self.db_pool_min_size < 1 or self.db_pool_max_size < self.db_pool_min_size:
            raise SettingsError("pool sizes must satisfy 1 <= min <= max")
        if self.feast_online == "redis" and not self.redis_url:
            raise SettingsError("NEARX_FEAST_ONLINE=redis needs NEARX_REDIS_URL")
        if self.feast_online == "postgres" and not (self.feast_postgres_url or self.database_url):
            raise SettingsError(
                "NEARX_FEAST_ONLINE=postgres needs NEARX_FEAST_POSTGRES_URL or NEARX_DATABASE_URL"
            )
        if self.routing == "graph" and self.routing_pbf is None:
            raise SettingsError("NEARX_ROUTING=graph needs NEARX_ROUTING_PBF (an .osm.pbf extract)")
        return self


def _sandbox_secret(home: Path, name: str) -> str:
    """A random secret generated once per installation, so sandbox tokens survive restarts."""
    import secrets

    path = home / "secrets" / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("x") as handle:
                handle.write(secrets.token_urlsafe(48))
        except FileExistsError:
            pass  # another process created it first; read theirs
        path.chmod(0o600)
    return path.read_text().strip()


def _decode_path(kind: type, value: object) -> object:
    if kind is Path and isinstance(value, str):
        return Path(value).expanduser()
    raise NotImplementedError(f"cannot read {kind!r} from the environment")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``NEARX_*`` variables of ``environ`` (the process environment by default)."""
    source = os.environ if environ is None else environ
    raw: dict[str, object] = {
        key[len(_PREFIX) :].lower(): value
        for key, value in source.items()
        if key.startswith(_PREFIX) and value != ""
    }
    raw = {key: value for key, value in raw.items() if key in Settings.__dataclass_fields__}
    if isinstance(raw.get("h3_resolutions"), str):
        raw["h3_resolutions"] = [part for part in str(raw["h3_resolutions"]).split(",") if part]
    try:
        settings = msgspec.convert(raw, Settings, strict=False, dec_hook=_decode_path)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid NEARX_* setting: {exc}") from exc
    return settings.validate()


@cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return load_settings()
