"""Talking to OpenAI-compatible chat endpoints: client, response cache, message content parts.

No Dagster here: the Dagster resource builds a :class:`ChatEndpointConfig` (API key from
``EnvVar``) and hands :class:`ChatClient` / :class:`CachedChatClient` to the code that asks.
"""

from models.llm.cache import CachedChatClient, CacheStats, ResponseCache, cache_key
from models.llm.client import (
    ChatClient,
    ChatCompleter,
    ChatEndpointConfig,
    ClientStats,
    LLMBudgetExceeded,
    LLMError,
    LLMRejected,
    LLMUnavailable,
    Validator,
    redact,
)
from models.llm.content import Message, canonical_messages, image_part, text_part

__all__ = [
    "CacheStats",
    "CachedChatClient",
    "ChatClient",
    "ChatCompleter",
    "ChatEndpointConfig",
    "ClientStats",
    "LLMBudgetExceeded",
    "LLMError",
    "LLMRejected",
    "LLMUnavailable",
    "Message",
    "ResponseCache",
    "Validator",
    "cache_key",
    "canonical_messages",
    "image_part",
    "redact",
    "text_part",
]
