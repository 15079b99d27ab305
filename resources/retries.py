"""Step retries for endpoint outages, and only for those.

The chat client already retries each request with backoff. When it gives up on an outage
(connection errors, timeouts, HTTP 408/409/429/5xx for minutes), the whole step is worth another try
later: replies received so far come from the response cache, so a retry pays only for what is
missing. Everything else fails at once, because it would fail again the same way: a refused request
(HTTP 400/401/403/404/422: a wrong key, base URL or model), malformed replies the client already
asked again for, a spent request budget, bad data.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from dagster import RetryRequested

from models.llm import LLMUnavailable

ENDPOINT_RETRY_WAIT_S = 60.0


@contextmanager
def retry_on_endpoint_outage(max_retries: int, seconds_to_wait: float | None = None) -> Iterator[None]:
    """Turn an endpoint outage inside the block into a step retry (``max_retries`` 0: fail at once).

    ``seconds_to_wait`` defaults to :data:`ENDPOINT_RETRY_WAIT_S`, read at each call.
    """
    try:
        yield
    except LLMUnavailable as err:
        if max_retries <= 0:
            raise
        wait = ENDPOINT_RETRY_WAIT_S if seconds_to_wait is None else seconds_to_wait
        raise RetryRequested(max_retries=max_retries, seconds_to_wait=wait) from err
