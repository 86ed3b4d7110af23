"""What one try of a delivery came to: the dispatcher records it and decides what comes next."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["delivered", "retry", "gone", "refused"]


@dataclass(frozen=True)
class Attempt:
    """What one try of a delivery came to.

    delivered: a 2xx (webhook) or accepted by the SMTP server. retry: worth trying again (connection
    error, timeout, 408, 429, 5xx, SMTP 4xx). gone: 410, the endpoint is disabled for good. refused: a
    permanent failure (another 3xx/4xx, an SMTP 5xx, a URL that is not http(s)).
    """

    outcome: Outcome
    detail: str  # e.g. "503 Service Unavailable: <first 200 chars of body>", "timeout after 5.0 s"
    retry_after: float | None = None  # seconds the receiver asked to wait (Retry-After)
