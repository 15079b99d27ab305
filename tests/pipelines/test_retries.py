"""Only endpoint outages become step retries; refused requests, bad replies and a spent budget fail at once."""

from __future__ import annotations

import pytest
from dagster import RetryRequested

from models.llm import LLMBudgetExceeded, LLMError, LLMRejected, LLMUnavailable
from resources.retries import retry_on_endpoint_outage


def test_outage_is_retried_later() -> None:
    with pytest.raises(RetryRequested) as retry, retry_on_endpoint_outage(2, seconds_to_wait=5):
        raise LLMUnavailable("endpoint down after 4 attempts")
    assert retry.value.max_retries == 2 and retry.value.seconds_to_wait == 5


@pytest.mark.parametrize(
    "error",
    [
        LLMRejected(401, "HTTP 401, not retried: set LOGICLS_PARAPHRASE_API_KEY to a valid key"),
        LLMRejected(404, "HTTP 404, not retried: check base_url and model"),
        LLMError("gave up after 3 attempt(s); last: malformed reply: empty content"),
        LLMBudgetExceeded("budget spent"),
        ValueError("bad config"),
    ],
)
def test_other_errors_fail_at_once(error: Exception) -> None:
    with pytest.raises(type(error)), retry_on_endpoint_outage(2):
        raise error


def test_no_step_retries_reraises_the_outage() -> None:
    with pytest.raises(LLMUnavailable), retry_on_endpoint_outage(0):
        raise LLMUnavailable("endpoint down")
