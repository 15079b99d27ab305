"""Fixtures for the LLM client tests: a loopback chat server and fast, bounded client settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from models.llm import ChatClient, ChatEndpointConfig
from tests.fakes.openai_server import FakeOpenAIServer

API_KEY = "sk-test-7f3a9c1e5b-DO-NOT-LEAK"


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as running:
        yield running


@pytest.fixture
def waits() -> list[float]:
    """The back-off waits the clients asked for, recorded instead of slept."""
    return []


@pytest.fixture
def make_client(server: FakeOpenAIServer, waits: list[float]) -> Iterator[Callable[..., ChatClient]]:
    """Clients on ``server`` with small bounds; keyword arguments override the config."""
    clients: list[ChatClient] = []

    def make(**overrides: Any) -> ChatClient:
        settings: dict[str, Any] = {
            "base_url": server.base_url,
            "model": "fake-model",
            "api_key": API_KEY,
            "timeout_s": 2.0,
            "max_retries": 2,
            "request_budget": 50,
            "backoff_base": 0.01,
            "backoff_max": 0.5,
        } | overrides
        client = ChatClient(ChatEndpointConfig(**settings), sleep=waits.append)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
