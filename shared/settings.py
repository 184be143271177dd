"""Process settings: environment only, `FLASHSALE_` prefix, no development secret elsewhere."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_WEBHOOK_SECRET = "dev-webhook-secret-change-me"
DEV_ADMIN_TOKEN = "dev-admin-token-change-me"

#: Ports of the local launcher's servers; the default URLs below point at them.
LOCAL_AMQP_PORT = 5673
LOCAL_PG_PORT = 5433


class Settings(BaseSettings):
    """Everything a gateway or worker process reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="FLASHSALE_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    amqp_url: str = f"amqp://flashsale:flashsale@127.0.0.1:{LOCAL_AMQP_PORT}/"
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
    #: How long the gateway waits for a worker's reply before answering 503 / 202.
    request_timeout_seconds: float = Field(default=5.0, gt=0)
    #: How often the inventory worker looks for holds and orders whose expiry message is late.
    sweep_interval_seconds: float = Field(default=30.0, gt=0)
    #: How late an expiry may be before the sweep re-issues it.
    sweep_grace_seconds: float = Field(default=5.0, ge=0)
    amqp_heartbeat_seconds: int = Field(default=10, ge=1)
    #: Most commands of one partition decided in one transaction (also the partition prefetch).
    inventory_batch_size: int = Field(default=100, ge=1, le=1000)
    db_pool_size: int = Field(default=10, ge=1)
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)

    @model_validator(mode="before")
    @classmethod
    def _split_secrets(cls, data: object) -> object:
        if isinstance(data, dict):
            raw = data.get("webhook_secrets")
            if isinstance(raw, str):
                data["webhook_secrets"] = [s.strip() for s in raw.split(",") if s.strip()]
        return data

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_development(self) -> Settings:
        if not self.webhook_secrets:
            raise ValueError("FLASHSALE_WEBHOOK_SECRETS must name at least one secret")
        if self.env != "development":
            if DEV_WEBHOOK_SECRET in self.webhook_secrets:
                raise ValueError("FLASHSALE_WEBHOOK_SECRETS is the development secret")
            if self.admin_token == DEV_ADMIN_TOKEN:
                raise ValueError("FLASHSALE_ADMIN_TOKEN is the development token")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()


PROJECT_ROOT = Path(__file__).resolve().parent.parent
