"""Production refuses missing, short and development secrets, and says which setting is wrong."""

from __future__ import annotations

import os
import re

import pytest
from pydantic import ValidationError

from shared.settings import DEV_ADMIN_TOKEN, DEV_WEBHOOK_SECRET, MIN_SECRET_LENGTH, Settings

pytestmark = pytest.mark.unit

ADMIN = "admin-9f8e7d6c5b4a39281706f5e4d3c2b1a0"[:MIN_SECRET_LENGTH]
WEBHOOK = "hook-0a1b2c3d4e5f60718293a4b5c6d7e8f9"[:MIN_SECRET_LENGTH]
KEY = "key-f0e1d2c3b4a5968778695a4b3c2d1e0f"[:MIN_SECRET_LENGTH]
STRONG = {
    "FLASHSALE_ADMIN_TOKEN": ADMIN,
    "FLASHSALE_WEBHOOK_SECRETS": WEBHOOK,
    "FLASHSALE_STOREFRONT_KEYS": "shop:" + KEY,
}
SHORT = "short-3c9a1e7b5d2f8046a1c3e5b7d9"[: MIN_SECRET_LENGTH - 1]

WEAK = [
    ("FLASHSALE_ADMIN_TOKEN", ""),
    ("FLASHSALE_ADMIN_TOKEN", " " * 40),
    ("FLASHSALE_ADMIN_TOKEN", SHORT),
    ("FLASHSALE_ADMIN_TOKEN", DEV_ADMIN_TOKEN),
    ("FLASHSALE_WEBHOOK_SECRETS", ""),
    ("FLASHSALE_WEBHOOK_SECRETS", SHORT),
    ("FLASHSALE_WEBHOOK_SECRETS", DEV_WEBHOOK_SECRET),
    ("FLASHSALE_WEBHOOK_SECRETS", WEBHOOK + "," + DEV_WEBHOOK_SECRET),
    ("FLASHSALE_WEBHOOK_SECRETS", WEBHOOK + "," + SHORT),
    ("FLASHSALE_STOREFRONT_KEYS", ""),
    ("FLASHSALE_STOREFRONT_KEYS", "shop:" + SHORT),
    ("FLASHSALE_STOREFRONT_KEYS", "shop:   " + SHORT + "   "),
    ("FLASHSALE_STOREFRONT_KEYS", "shop:" + DEV_WEBHOOK_SECRET),
    ("FLASHSALE_STOREFRONT_KEYS", "shop:" + DEV_ADMIN_TOKEN),
    ("FLASHSALE_STOREFRONT_KEYS", "shop:" + KEY + ",other:" + SHORT),
    ("FLASHSALE_STOREFRONT_KEYS", KEY),  # no name: malformed
]


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A production environment with strong secrets and nothing else from the caller's shell."""
    for name in [n for n in os.environ if n.startswith("FLASHSALE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FLASHSALE_ENV", "production")
    for name, value in STRONG.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_production_accepts_secrets_of_the_minimum_length(production: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.env == "production"
    assert settings.storefront_key_map() == {KEY: "shop"}


@pytest.mark.parametrize(("setting", "value"), WEAK)
def test_production_refuses_a_weak_secret_and_names_the_setting(
    production: pytest.MonkeyPatch, setting: str, value: str
) -> None:
    production.setenv(setting, value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert setting in str(refused.value)


@pytest.mark.parametrize(("setting", "value"), [(s, v) for s, v in WEAK if v.strip()])
def test_a_refusal_never_echoes_the_secrets_it_read(
    production: pytest.MonkeyPatch, setting: str, value: str
) -> None:
    production.setenv(setting, value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    message = str(refused.value)
    secrets = [part.strip() for s in [*STRONG.values(), value] for part in re.split("[,:]", s)]
    for secret in [s for s in secrets if len(s) >= 8]:  # not the storefront names
        fragments = {secret[i : i + 8] for i in range(len(secret) - 7)}
        assert not [f for f in fragments if f in message], message


def test_docs_are_off_in_production_unless_asked_for(production: pytest.MonkeyPatch) -> None:
    assert Settings().docs_served is False
    production.setenv("FLASHSALE_DOCS_ENABLED", "true")
    assert Settings().docs_served is True
