"""What the runner's HTTP clients (runner.attribution's IHC client, runner.messaging's SMS
sender) share when they retry: the wait between tries, which honours a 429's
Retry-After, and keeping a secret out of the messages they log and store."""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime

import requests
import tenacity


def retry_after(response: requests.Response) -> float | None:
    """The seconds a response's Retry-After header asks to wait (a number of seconds or
    an HTTP date), or None when it has none or it cannot be read."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (moment - datetime.now(moment.tzinfo)).total_seconds())


class WaitOrRetryAfter(tenacity.wait.wait_base):
    """Exponential backoff with jitter, min(max_backoff, backoff x 2^(attempt - 1)) x
    uniform(0.5, 1) (half fixed, half random: no thundering herd), or the Retry-After of
    the last try when longer (capped at max_backoff): the retried function's result
    carries it as its `retry_after` attribute (seconds, or None)."""

    def __init__(self, backoff: float, max_backoff: float) -> None:
        self.max_backoff = max_backoff
        half = tenacity.wait_exponential(multiplier=backoff / 2, max=max_backoff / 2)
        self.backoff = half + tenacity.wait_random_exponential(
            multiplier=backoff / 2, max=max_backoff / 2
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        delay = float(self.backoff(retry_state))
        attempt = retry_state.outcome.result() if retry_state.outcome else None
        hint = getattr(attempt, "retry_after", None)
        if hint is not None:
            delay = max(delay, min(float(hint), self.max_backoff))
        return delay


def redact(text: str, secret: str) -> str:
    """`text` with every occurrence of the secret replaced."""
    return text.replace(secret, "***") if secret else text
