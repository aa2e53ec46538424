"""The one Settings object. Every module gets configuration from here, never from os.environ."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ops.platform.channel_settings import ChannelSettings

DEFAULT_TIMEZONE = "Asia/Shanghai"
PLACEHOLDER_SECRETS = {"", "change-me", "changeme", "secret", "dev", "development"}


class Mode(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Reunite configuration, read from REUNITE_* variables (DATABASE_URL and REDIS_URL bare)."""

    model_config = SettingsConfigDict(
        env_prefix="REUNITE_", extra="ignore", populate_by_name=True, env_nested_delimiter="__"
    )

    mode: Mode = Mode.DEVELOPMENT
    data_dir: Path = Path(".reunite")
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "REUNITE_DATABASE_URL")
    )
    # redis://host:port/db names one Redis; redis+cluster://host:port (rediss+cluster:// for
    # TLS) a Redis Cluster, reached through any of its nodes. A cluster cannot be Celery's
    # broker (kombu's Redis transport needs one keyspace), so it needs CELERY_BROKER_URL.
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "REUNITE_REDIS_URL")
    )
    # Celery's broker, a plain (or Sentinel-managed) Redis; unset, the REDIS_URL one.
    celery_broker_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CELERY_BROKER_URL", "REUNITE_CELERY_BROKER_URL"),
    )
    secret_key: SecretStr = SecretStr("change-me")
    # The audit chain's MAC keys, "id:secret,id:secret" (the first signs; the others still
    # verify older entries, so a key is rotated by putting a new one first). Keep them away
    # from the database's owners; unset, one key is derived from secret_key.
    audit_keys: SecretStr | None = None
    # Signed checkpoints of the chain head, appended here (default data_dir); put it where the
    # database's owners cannot rewrite it (another host's volume, a synced object store).
    audit_checkpoint_path: Path | None = None
    audit_checkpoint_interval_s: float = Field(default=60.0, ge=1)
    # Where case photos live, shared by the API and every worker (ops/platform/blobstore.py):
    # unset is <data_dir>/photos; a directory path; or s3+https://KEY:SECRET@host/bucket.
    photo_store: SecretStr | None = None
    # /metrics needs "Authorization: Bearer <token>" when set; production serves it only then.
    metrics_token: SecretStr | None = None

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    worker_concurrency: int = Field(default=2, ge=1, le=64)
    # Threads of `reunite webhooks`: partner requests in flight at once on one machine.
    webhook_worker_concurrency: int = Field(default=16, ge=1, le=256)

    # Tokens from the token endpoint and the CLI (password and TOTP): a working day.
    token_ttl_hours: int = Field(default=12, ge=1, le=24 * 30)
    # Tokens made in a console session (named, scoped, listed, revocable) are for scripts and
    # integrations that cannot type a TOTP code each day: the longest lifetime one may have.
    api_token_max_days: int = Field(default=90, ge=1, le=365)
    # A last-seen time older than this is a typo, not a case an alert can help with.
    last_seen_max_age_days: int = Field(default=30, ge=1, le=3650)
    alert_lifetime_hours: int = Field(default=72, ge=1, le=24 * 30)
    # Two-person rule on a live alert: a sighting that moves the centre further than this from
    # the last approved place waits for a second supervisor, as any change of public text does.
    live_change_max_km: float = Field(default=50.0, gt=0, le=5000)
    relay_interval_seconds: float = Field(default=2.0, gt=0, le=60)
    # An outbox task published this long ago and not completed is published again.
    outbox_redeliver_seconds: float = Field(default=300.0, ge=1)
    channels: ChannelSettings = ChannelSettings()

    # Geofencing: device locations older than this are not targeted; silent devices are purged.
    location_staleness_hours: float = Field(default=24, gt=0, le=24 * 30)
    device_retention_days: float = Field(default=30, gt=0, le=3650)
    radius_ceiling_km: float = Field(default=1000, gt=0, le=5000)
    wave_tick_seconds: float = Field(default=5.0, gt=0, le=300)
    # How often shards whose log tail passed its compaction threshold are compacted.
    index_compact_interval_seconds: float = Field(default=5.0, gt=0, le=600)
    bulk_max_rows: int = Field(default=50_000, ge=10_000, le=1_000_000)
    bulk_max_bytes: int = Field(default=32 * 1024 * 1024, ge=1024 * 1024)

    # Console (alerts/console): sessions, login throttling, photo intake and the map.
    session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    session_max_hours: int = Field(default=12, ge=1, le=72)
    # None: Secure cookies unless mode is development or test (plain-HTTP local runs).
    cookie_secure: bool | None = None
    login_max_failures: int = Field(default=5, ge=1, le=100)
    # Past this many failures from one address its attempts are delayed (never refused).
    login_ip_max_failures: int = Field(default=20, ge=1, le=10_000)
    login_address_max_delay_seconds: float = Field(default=3.0, ge=0, le=30)
    # Reverse proxies whose X-Forwarded-For the API believes (comma-separated addresses or
    # networks, e.g. the compose nginx). Empty: the peer address is the client, always.
    trusted_proxies: str = ""
    login_failure_window_seconds: int = Field(default=900, ge=60)
    login_lockout_seconds: int = Field(default=60, ge=1)
    login_lockout_max_seconds: int = Field(default=3600, ge=1)
    photo_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # Any other request body (JSON, forms); sign-in forms get 16 KB (ops.bodylimit).
    body_max_bytes: int = Field(default=1024 * 1024, ge=16 * 1024)
    # Slow clients (ops/slowclients.py): a request's headers must arrive within this total,
    # and a body may pause no longer than this between chunks.
    http_header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    http_body_idle_timeout_s: float = Field(default=30.0, gt=0, le=600)
    photo_max_pixels: int = Field(default=40_000_000, ge=10_000)
    # e.g. https://tiles.example/{z}/{x}/{y}.png (a deployment's own tile server); unset: the
    # console's maps draw the basemap shipped with Reunite (offline vector data).
    map_tile_url: str | None = None
    # Credit line the tile provider requires, shown on every map (e.g. "© OpenStreetMap").
    map_tile_attribution: str = Field(default="", max_length=300)
    # maps and address lookup (geo/gazetteer): "offline" is the shipped GeoNames gazetteer;
    # any other value is a geopy provider name (e.g. "nominatim", "pelias", "photon"),
    # built with geocoder_options as keyword arguments (e.g. {"domain": "nominatim.internal",
    # "scheme": "https"}) and geocoder_api_key as api_key/ak where the provider takes one.
    geocoder: str = "offline"
    geocoder_options: dict[str, Any] = Field(default_factory=dict)
    geocoder_api_key: SecretStr | None = None
    geocoder_timeout_s: float = Field(default=5.0, gt=0, le=60)
    geocoder_max_results: int = Field(default=8, ge=1, le=20)
    # The one time zone of local times: pushes, SMS, feeds and the console all use it.
    timezone: str = Field(
        default=DEFAULT_TIMEZONE,
        validation_alias=AliasChoices("REUNITE_TIMEZONE", "REUNITE_CONSOLE_TIMEZONE", "timezone"),
    )

    # Operations (ops/): metrics files shared by API and workers, logs, readiness.
    # Reach report map: H3 cells with fewer targeted devices than this are not shown.
    reach_k_floor: int = Field(default=10, ge=2, le=100_000)
    # None: REUNITE_DATA_DIR/metrics. The CLI exports it as PROMETHEUS_MULTIPROC_DIR.
    metrics_dir: Path | None = None
    # None: JSON lines in production mode, readable lines otherwise.
    log_json: bool | None = None
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")
    # /readyz answers 503 when no worker beat within the heartbeat TTL.
    ready_requires_workers: bool = True
    # Celery task events for Flower (`celery -A alerts.bootstrap flower`); off saves Redis work.
    worker_events: bool = False
    # A worker machine without the API serves its processes' counters here (None: off).
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)

    # Partner feeds, stream and privacy (alerts/feeds, alerts/partners, alerts/privacy).
    public_base_url: str = "http://127.0.0.1:8000"
    # CAP <sender>: unset, "alerts@" + the public base URL's host.
    cap_sender: str = ""
    # CAP signing (alerts/feeds/signing.py), comma-separated PEM files. The first holds the
    # private key and its certificate and signs; the others (a certificate is enough) are only
    # published at /.well-known/reunite/cap-signing.pem, so partners can trust the next key
    # before it signs and the last one while its documents are still current. Unset outside
    # production: a self-signed key made once in <data_dir>/cap-signing.pem.
    cap_signing_keys: str = ""
    # The US IPAWS profile: <code>IPAWSv1.0</code>, EAS-ORG, and the WEA texts (CMAMtext of 90
    # and CMAMlongtext of 360 GSM-7 characters) in every info whose language WEA carries.
    cap_ipaws_profile: bool = False
    # A closed case leaves the Atom/JSON feeds this long after closure.
    feed_removal_hours: float = Field(default=24, ge=0, le=24 * 30)
    # The AllClear Update's near expiry.
    allclear_expires_minutes: int = Field(default=60, ge=1, le=24 * 60)
    feed_page_size: int = Field(default=50, ge=1, le=500)
    # The public feed (alerts/feeds/public.py) is rebuilt at most this often, served from Redis.
    public_feed_cache_s: float = Field(default=15, ge=1, le=3600)
    photo_url_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    # Live-stream events older than this are trimmed; a reconnect within it misses nothing.
    stream_retention_hours: float = Field(default=24, gt=0, le=24 * 14)
    # Whether devices that got the alert also get the resolved/cancelled push.
    closing_push_to_devices: bool = True
    # The child's personal data is erased this long after the case closed.
    erasure_retention_days: float = Field(default=7, ge=0, le=3650)
    # A draft (never submitted, or rejected back to its officer) untouched this long is
    # cancelled as abandoned, and then erased on the schedule above like any closed case.
    draft_retention_days: float = Field(default=30, gt=0, le=3650)

    # Tips (alerts/tips): the public form on the case page proves work (hashcash: a SHA-256
    # with this many leading zero bits, about 2**bits hashes in the browser) on a signed
    # challenge that lives tip_challenge_ttl_s, and each address may send this many an hour.
    tip_pow_bits: int = Field(default=18, ge=0, le=28)
    tip_challenge_ttl_s: int = Field(default=600, ge=30, le=3600)
    tip_public_per_hour: int = Field(default=5, ge=1, le=1000)

    @field_validator("geocoder")
    @classmethod
    def _known_geocoder(cls, value: str) -> str:
        from geopy.exc import GeocoderNotFound
        from geopy.geocoders import get_geocoder_for_service

        value = value.strip().lower()
        if value == "offline":
            return value
        try:
            get_geocoder_for_service(value)
        except GeocoderNotFound:
            hint = "offline, or a geopy provider such as nominatim"
            raise ValueError(f"unknown geocoder {value!r} ({hint})") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            hint = "an IANA name, e.g. Asia/Shanghai"
            raise ValueError(f"unknown time zone {value!r} ({hint})") from None
        return value

    @model_validator(mode="after")
    def _derive_cap_sender(self) -> Settings:
        if not self.cap_sender:
            host = urlsplit(self.public_base_url).hostname or "localhost"
            self.cap_sender = f"alerts@{host}"
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.mode is Mode.PRODUCTION:
            if self.secret_key.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
                raise ValueError("REUNITE_SECRET_KEY is a placeholder; set a real secret")
            if len(self.secret_key.get_secret_value()) < 32:
                raise ValueError("REUNITE_SECRET_KEY must be at least 32 characters")
            if self.database_url is None or self.redis_url is None:
                raise ValueError("production mode needs DATABASE_URL and REDIS_URL")
            if self.cookie_secure is False:
                raise ValueError("REUNITE_COOKIE_SECURE=false is for development only")
            for name, value in (
                ("REUNITE_PUBLIC_BASE_URL", self.public_base_url),
                ("REUNITE_CAP_SENDER", self.cap_sender),
                ("REUNITE_CHANNELS__DEEP_LINK_BASE", self.channels.deep_link_base or ""),
            ):
                if "reunite.example" in value.lower():
                    raise ValueError(f"{name} is the reunite.example placeholder; set yours")
            if not self.cap_signing_key_paths:
                # A key made on the spot would differ per machine and be trusted by no partner.
                raise ValueError("production mode needs REUNITE_CAP_SIGNING_KEYS (PEM files)")
        return self

    @model_validator(mode="after")
    def _cluster_needs_a_broker(self) -> Settings:
        if self.redis_cluster and not self.celery_broker_url:
            raise ValueError(
                "REDIS_URL names a Redis Cluster, which cannot be Celery's broker: "
                "set CELERY_BROKER_URL to a plain Redis"
            )
        if self.celery_broker_url and is_cluster_url(self.celery_broker_url):
            raise ValueError("CELERY_BROKER_URL must be a plain Redis, not a cluster")
        return self

    @property
    def case_link_base(self) -> str:
        """Base of every message's link to its case: the public case page unless overridden."""
        return self.channels.deep_link_base or f"{self.public_base_url.rstrip('/')}/c/"

    @property
    def cap_signing_key_paths(self) -> list[Path]:
        """The configured CAP signing PEM files, the signing one first."""
        return [Path(p.strip()) for p in self.cap_signing_keys.split(",") if p.strip()]

    @property
    def secure_cookies(self) -> bool:
        """Whether console cookies carry Secure (off only in development and test)."""
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.mode is Mode.PRODUCTION

    @property
    def resolved_metrics_dir(self) -> Path:
        """Where every process writes its prometheus-client multiprocess files."""
        return (self.metrics_dir or self.data_dir / "metrics").resolve()

    @property
    def json_logs(self) -> bool:
        """Whether logs are JSON lines (production default) or readable text."""
        return self.log_json if self.log_json is not None else self.mode is Mode.PRODUCTION

    @property
    def embedded_redis(self) -> bool:
        """True when no REDIS_URL is configured and Reunite runs its own Redis."""
        return self.redis_url is None

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with the driver SQLAlchemy should use."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'reunite.db').resolve()}"
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://") :]
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        return url

    @property
    def embedded_redis_socket(self) -> Path:
        """Unix socket of the embedded Redis server."""
        return (self.data_dir / "redis.sock").resolve()

    @property
    def resolved_redis_url(self) -> str:
        """redis-py URL of the configured or embedded Redis (or redis+cluster://...)."""
        return self.redis_url or f"unix://{self.embedded_redis_socket}"

    @property
    def redis_cluster(self) -> bool:
        """True when REDIS_URL names a Redis Cluster."""
        return is_cluster_url(self.resolved_redis_url)

    @property
    def broker_redis_url(self) -> str:
        """redis-py URL of Celery's broker: CELERY_BROKER_URL, else the REDIS_URL Redis."""
        return self.celery_broker_url or self.resolved_redis_url

    @property
    def broker_url(self) -> str:
        """Kombu URL of the broker (kombu spells unix sockets differently)."""
        url = self.broker_redis_url
        if url.startswith("unix://"):
            path, _, query = url[len("unix://") :].partition("?")
            return f"redis+socket://{path}" + (f"?{query}" if query else "")
        return url


def is_cluster_url(url: str) -> bool:
    """Whether a Redis URL names a Redis Cluster (redis+cluster:// or rediss+cluster://)."""
    return url.split("://", 1)[0] in ("redis+cluster", "rediss+cluster")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, validated once."""
    return Settings()
