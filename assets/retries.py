"""Step retries for endpoint outages, and only for those.

The chat client already retries each request with backoff. When it gives up (an outage of
minutes), the whole step is worth another try later: replies received so far come from the
response cache, so a retry pays only for what is missing. Other errors (bad configuration, a spent
request budget, bad data) would fail again the same way, so they fail at once.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from dagster import RetryRequested

from models.llm import LLMBudgetExceeded, LLMError

ENDPOINT_RETRY_WAIT_S = 60.0


@contextmanager
def retry_on_endpoint_outage(max_retries: int, seconds_to_wait: float = ENDPOINT_RETRY_WAIT_S) -> Iterator[None]:
    """Turn an endpoint outage inside the block into a step retry (``max_retries`` 0: fail at once)."""
    try:
        yield
    except LLMBudgetExceeded:
        raise
    except LLMError as err:
        if max_retries <= 0:
            raise
        raise RetryRequested(max_retries=max_retries, seconds_to_wait=seconds_to_wait) from err
