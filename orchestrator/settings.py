"""Settings from the environment (``ORCHESTRATOR_*``), read with pydantic-settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Deployment settings. Every field reads ``ORCHESTRATOR_<FIELD>`` from the environment.

    Attributes:
        home: local state (embedded server data, filesystem IO manager storage).
        redis_url: shared Redis; empty means "start or reuse the embedded Valkey server".
        key_prefix: prefix of every Redis key, so deployments and tests can share a server.
        storage_url: where the filesystem IO manager keeps outputs (a path or fsspec URL);
            empty means ``<home>/storage``.
    """

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".orchestrator")
    redis_url: str = ""
    key_prefix: str = "orchestrator"
    storage_url: str = ""

    @property
    def storage_dir(self) -> str:
        return self.storage_url or str(self.home / "storage")


def get_settings() -> Settings:
    """Settings as the environment says now (not cached: tests change the environment)."""
    return Settings()
