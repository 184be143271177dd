"""Process settings: environment only, `FLASHSALE_` prefix, no development secret elsewhere."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_WEBHOOK_SECRET = "dev-webhook-secret-change-me"
DEV_ADMIN_TOKEN = "dev-admin-token-change-me"
#: Shortest secret, token or API key production accepts.
MIN_SECRET_LENGTH = 32
#: A storefront's name in FLASHSALE_STOREFRONT_KEYS (`name:key` entries).
STOREFRONT_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,31}$"

#: Ports of the local launcher's servers; the default URLs below point at them.
LOCAL_AMQP_PORT = 5673
LOCAL_PG_PORT = 5433


class Settings(BaseSettings):
    """Everything a gateway or worker process reads from its environment."""

    # A refusal must not print the environment it read: it holds the secrets.
    model_config = SettingsConfigDict(
        env_prefix="FLASHSALE_", extra="ignore", hide_input_in_errors=True
    )

    env: Literal["development", "test", "production"] = "development"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    amqp_url: str = f"amqp://flashsale:flashsale@127.0.0.1:{LOCAL_AMQP_PORT}/"
    #: The other nodes of the broker's cluster, comma-separated AMQP URLs: a connection whose
    #: node is gone moves to the next live one (shared/failover.py).
    amqp_failover_urls: str = ""
    database_url: str = (
        f"postgresql+asyncpg://flashsale:flashsale@127.0.0.1:{LOCAL_PG_PORT}/flashsale"
    )
    partitions: int = Field(default=8, ge=1, le=256)
    hold_ttl_seconds: int = Field(default=120, ge=1)
    payment_window_seconds: int = Field(default=900, ge=1)
    max_qty_per_hold: int = Field(default=10, ge=1)
    webhook_secrets: Annotated[list[str], NoDecode] = [DEV_WEBHOOK_SECRET]
    webhook_tolerance_seconds: int = Field(default=300, ge=1)
    admin_token: str = DEV_ADMIN_TOKEN
    #: Storefront API keys, `name:key` entries, comma-separated; several keys per name rotate.
    #: Empty: storefront requests need no key (development only).
    storefront_keys: Annotated[list[str], NoDecode] = []
    #: Requests per second (and burst) one storefront may make per gateway process; 0: no limit.
    storefront_rate_per_second: float = Field(default=0, ge=0)
    storefront_rate_burst: int = Field(default=200, ge=1)
    #: Holds per second (and burst) one customer_id may ask for per gateway process; 0: no limit.
    customer_rate_per_second: float = Field(default=5, ge=0)
    customer_rate_burst: int = Field(default=30, ge=1)
    #: Front door of the gateway's HTTP server.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=30)
    max_connections: int = Field(default=4096, ge=1)
    #: Requests one gateway process answers at once; one more is a 429 `overloaded` at once.
    max_in_flight: int = Field(default=256, ge=1)
    #: What a request let in may take to be answered: while answers take longer, a gateway
    #: process lets fewer in at once (see gateway/shedding.py); 0: always `max_in_flight`.
    in_flight_target_ms: float = Field(default=500, ge=0)
    #: Availability streams one gateway process serves at once (one more: 429 `overloaded`),
    #: and how long a stream may go without a byte (a comment line is sent then).
    max_streams: int = Field(default=1000, ge=1)
    stream_heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)
    #: Addresses of the reverse proxies whose X-Forwarded-For/-Proto the gateway believes
    #: (comma-separated, `*` for any); none by default: the peer address is the client's.
    forwarded_allow_ips: str = ""
    #: Interactive docs and the OpenAPI document: on unless production (then off unless set).
    docs_enabled: bool | None = None
    #: How long the gateway waits for a worker's reply before answering 503 / 202.
    request_timeout_seconds: float = Field(default=5.0, gt=0)
    #: How often the inventory worker looks for holds and orders whose expiry message is late.
    sweep_interval_seconds: float = Field(default=30.0, gt=0)
    #: How late an expiry may be before the sweep re-issues it.
    sweep_grace_seconds: float = Field(default=5.0, ge=0)
    #: Low, so a frozen (SIGSTOPped) consumer loses its partitions within 2 heartbeats.
    amqp_heartbeat_seconds: int = Field(default=3, ge=1)
    #: How long a worker retries a message in place while the database or broker is away,
    #: before the message goes back to its queue (each return counts towards the dead queue).
    transient_retry_seconds: float = Field(default=30.0, ge=0)
    #: Most commands of one partition decided in one transaction (also the partition prefetch).
    inventory_batch_size: int = Field(default=100, ge=1, le=1000)
    #: The gateway coalesces holds per partition: the longest a hold waits for company, the
    #: most holds in one envelope, and envelopes unanswered at once per partition.
    hold_batch_wait_ms: float = Field(default=5.0, ge=0, le=100)
    hold_batch_size: int = Field(default=200, ge=1, le=500)
    hold_batches_in_flight: int = Field(default=1, ge=1, le=64)
    #: Holds waiting behind them per partition before the gateway answers 429 overloaded.
    hold_batch_max_waiting: int = Field(default=400, ge=1)
    #: How long a gateway acts on a product's stock level without hearing of it again.
    stock_level_max_age_seconds: float = Field(default=1.0, gt=0, le=10)
    #: Gateway processes `flashsale up` runs on the one HTTP port.
    gateway_processes: int = Field(default=2, ge=1, le=64)
    db_pool_size: int = Field(default=10, ge=1)
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)

    @model_validator(mode="before")
    @classmethod
    def _split_secrets(cls, data: object) -> object:
        if isinstance(data, dict):
            for name in ("webhook_secrets", "storefront_keys"):
                raw = data.get(name)
                if isinstance(raw, str):
                    data[name] = [s.strip() for s in raw.split(",") if s.strip()]
        return data

    @model_validator(mode="after")
    def _refuse_weak_secrets(self) -> Settings:
        """Fail closed: name the setting that is missing, weak or the development value."""
        if not self.webhook_secrets:
            raise ValueError("FLASHSALE_WEBHOOK_SECRETS must name at least one secret")
        self.storefront_key_map()  # refuses a malformed entry
        if self.env != "development":
            if DEV_WEBHOOK_SECRET in self.webhook_secrets:
                raise ValueError("FLASHSALE_WEBHOOK_SECRETS is the development secret")
            if self.admin_token == DEV_ADMIN_TOKEN:
                raise ValueError("FLASHSALE_ADMIN_TOKEN is the development token")
        if self.env == "production":
            if not self.storefront_keys:
                raise ValueError("FLASHSALE_STOREFRONT_KEYS is required in production")
            named = [
                ("FLASHSALE_ADMIN_TOKEN", self.admin_token),
                *(("FLASHSALE_WEBHOOK_SECRETS", s) for s in self.webhook_secrets),
                *(("FLASHSALE_STOREFRONT_KEYS", k) for k in self.storefront_key_map()),
            ]
            for setting, value in named:
                if len(value.strip()) < MIN_SECRET_LENGTH:
                    raise ValueError(
                        f"{setting}: every secret must have at least {MIN_SECRET_LENGTH} characters"
                    )
        return self

    def storefront_key_map(self) -> dict[str, str]:
        """API key → storefront name, from the `name:key` entries."""
        found: dict[str, str] = {}
        for entry in self.storefront_keys:
            name, sep, key = entry.partition(":")
            if not sep or not key or not re.match(STOREFRONT_NAME_PATTERN, name):
                raise ValueError(
                    "FLASHSALE_STOREFRONT_KEYS entries are name:key, the name in "
                    f"{STOREFRONT_NAME_PATTERN}"
                )
            found[key] = name
        return found

    @property
    def docs_served(self) -> bool:
        """Whether /docs, /redoc and /openapi.json are served."""
        return self.docs_enabled if self.docs_enabled is not None else self.env != "production"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()


PROJECT_ROOT = Path(__file__).resolve().parent.parent
