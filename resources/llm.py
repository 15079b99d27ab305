"""OpenAI-compatible chat endpoints (OpenAI, vLLM, Ollama, llama.cpp) as a configurable resource.

The API key never enters run config: ``api_key`` holds only the *name* of the environment variable
(``{env: NAME}`` in the launchpad, ``EnvVar("NAME")`` in Python, the form Dagster itself stores for an
``EnvVar``), and the value is read from the environment when the run asks its first question. A key
typed into the launchpad is refused by the config schema before the run is created, so it never
reaches the run storage; in Python a plain string is refused at construction. The key is then handed
to the client and never logged, stored in metadata, or written to the cache.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import Config, ConfigurableResource, EnvVar
from pydantic import ConfigDict, Field, field_validator

from models.llm import CachedChatClient, ChatClient, ChatEndpointConfig, ResponseCache
from models.storage import EndpointVariables
from resources.config_mirror import mirror

# Upper case only: a key pasted where the name belongs (keys have lower-case letters) is refused.
_VARIABLE = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")


class KeyFromEnv(Config):
    """Where an API key comes from: the name of an environment variable, never the key itself."""

    # Validation errors must not echo their input: it may be a key typed in the wrong place.
    model_config = ConfigDict(hide_input_in_errors=True)

    env: str = Field(description="Name of the environment variable that holds the key, e.g. "
                                 "LOGICLS_PARAPHRASE_API_KEY (upper case, digits, _).")

    @field_validator("env")
    @classmethod
    def _a_variable_name(cls, name: str) -> str:
        if not _VARIABLE.fullmatch(name):
            raise ValueError("api_key.env must be the name of an environment variable (upper-case letters, "
                             "digits, _), not the key: put the key in that variable")
        return name


ENDPOINT_SETTINGS = mirror(
    ChatEndpointConfig,
    base=ConfigurableResource,
    hidden={
        "base_url": "declared by the resource: optional there (unset: work offline), required by the client",
        "model": "declared by the resource: empty until an endpoint is configured",
        "api_key": "a key is never config: the resource's api_key names its environment variable instead",
        "api_key_env": "derived from the resource's api_key",
    },
)


class ChatEndpoint(ENDPOINT_SETTINGS):
    """One chat endpoint (`models.llm.ChatEndpointConfig`'s settings); unconfigured (no ``base_url``) means
    "work offline"."""

    model_config = ConfigDict(hide_input_in_errors=True)

    base_url: str | None = Field(default=None, description="e.g. https://api.openai.com/v1 or http://localhost:8000/v1")
    model: str = Field(default="", description="Model name served at base_url.")
    api_key: KeyFromEnv | None = Field(
        default=None,
        description="The environment variable that holds the API key, as {env: NAME}; read when the run starts, "
                    "unset or empty meaning no key (keyless local servers). A key itself is refused here: "
                    "run config is stored in plain text, so keys live in environment variables.",
    )
    cache_dir: str = Field(description="Replies are cached here, so a re-run costs nothing.")

    @field_validator("api_key", mode="before")
    @classmethod
    def _from_env_only(cls, value: object) -> object:
        if isinstance(value, EnvVar):  # Dagster stores an EnvVar as {"env": NAME}: the same shape
            return {"env": value.env_var_name}
        if isinstance(value, str):
            raise ValueError("api_key takes EnvVar('NAME') (in run config {env: NAME}), not the key itself: "
                             "set the environment variable NAME to the key instead")
        return value

    @property
    def is_configured(self) -> bool:
        return bool(self.base_url)

    @property
    def api_key_env(self) -> str:
        """The name of the variable holding the key; empty when none is bound."""
        key = self.api_key
        if isinstance(key, EnvVar):  # as Dagster leaves it on the definition-time instance
            return key.env_var_name
        return key.env if key is not None else ""

    def endpoint_config(self) -> ChatEndpointConfig:
        """The client's settings, with the key read from its environment variable now."""
        variable = self.api_key_env
        return self.to_core(base_url=self.base_url or "", model=self.model,
                            api_key=os.environ.get(variable, "") if variable else "", api_key_env=variable)

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
    """``<prefix>_BASE_URL`` and ``<prefix>_MODEL`` from the environment now, the key from ``<prefix>_API_KEY``
    (`models.storage.EndpointVariables`; the prefixes are ``PARAPHRASE_ENDPOINT`` and ``ICL_ENDPOINT`` there).

    The key's variable is always bound, by name: it is read when a run starts, so an unset variable
    means a keyless endpoint rather than a failure at launch, and a refused key names the variable.
    """
    variables = EndpointVariables(prefix)
    base_url, model = variables.settings()
    return ChatEndpoint(base_url=base_url, model=model, api_key=EnvVar(variables.api_key), cache_dir=cache_dir,
                        **overrides)
