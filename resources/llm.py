"""OpenAI-compatible chat endpoints (OpenAI, vLLM, Ollama, llama.cpp) as a configurable resource.

The API key reaches the resource only through Dagster's ``EnvVar`` (read at launch, hidden in the
UI); it is handed to the client and never logged, stored in metadata, or written to the cache.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from models.llm import CachedChatClient, ChatClient, ChatEndpointConfig, ResponseCache


class ChatEndpoint(ConfigurableResource):
    """One chat endpoint; unconfigured (no ``base_url``) means "work offline"."""

    base_url: str | None = Field(default=None, description="e.g. https://api.openai.com/v1 or http://localhost:8000/v1")
    model: str = Field(default="", description="Model name served at base_url.")
    api_key: str = Field(default="", description="Bind to an EnvVar; empty for keyless local servers.")
    timeout_s: float = 60.0
    max_retries: int = 4
    request_budget: int = Field(default=1000, description="HTTP requests allowed per run, retries included.")
    temperature: float = 0.7
    max_tokens: int = 1024
    cache_dir: str = Field(description="Replies are cached here, so a re-run costs nothing.")

    @property
    def is_configured(self) -> bool:
        return bool(self.base_url)

    def endpoint_config(self) -> ChatEndpointConfig:
        return ChatEndpointConfig(
            base_url=self.base_url or "",
            model=self.model,
            api_key=self.api_key,
            timeout=self.timeout_s,
            max_retries=self.max_retries,
            request_budget=self.request_budget,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )

    @contextmanager
    def client(self) -> Iterator[CachedChatClient | None]:
        """A cached client for one run, or ``None`` when no endpoint is configured."""
        if not self.is_configured:
            yield None
            return
        with CachedChatClient(ChatClient(self.endpoint_config()), ResponseCache(Path(self.cache_dir))) as client:
            yield client

    def describe(self) -> dict[str, object]:
        """What may be shown in metadata: no key, no credentials in the URL."""
        if not self.is_configured:
            return {"endpoint": "none (offline)"}
        return {"endpoint": self.endpoint_config().safe_base_url, "model": self.model}


def chat_endpoint_from_env(prefix: str, cache_dir: str, **overrides: object) -> ChatEndpoint:
    """``<prefix>_BASE_URL``, ``<prefix>_MODEL`` and ``<prefix>_API_KEY`` (the key as an ``EnvVar``).

    The key is bound only when its variable exists at load time, so an unconfigured setup never
    fails at launch for a missing secret.
    """
    key_var = f"{prefix}_API_KEY"
    return ChatEndpoint(
        base_url=os.getenv(f"{prefix}_BASE_URL") or None,
        model=os.getenv(f"{prefix}_MODEL", ""),
        api_key=EnvVar(key_var) if key_var in os.environ else "",
        cache_dir=cache_dir,
        **overrides,
    )
