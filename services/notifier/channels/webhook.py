"""Webhooks signed per the Standard Webhooks specification (standardwebhooks.com): a receiver checks
them with any of its reference libraries, e.g. `Webhook(secret).verify(body, headers)`."""
from __future__ import annotations

import asyncio
import base64
import math
import secrets
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
import orjson
from standardwebhooks import Webhook

from services.notifier.channels.outcome import Attempt

EXCERPT_CHARS = 200  # of a failed response's body, kept in the attempt's detail


def new_webhook_secret() -> str:
    """A signing secret in the specification's format: `whsec_` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def webhook_body(event_type: str, timestamp: datetime, data: dict) -> str:
    """The body in the specification's recommended shape; `timestamp` is when the event happened."""
    if timestamp.tzinfo is None:
        raise ValueError("a webhook's timestamp must carry its time zone")
    payload = {"type": event_type, "timestamp": timestamp.astimezone(UTC), "data": data}
    return orjson.dumps(payload, option=orjson.OPT_UTC_Z).decode()


async def post_webhook(client: httpx.AsyncClient, url: str, secret: str, msg_id: str, timestamp: datetime,
                       body: str, timeout: float) -> Attempt:
    """One signed POST of `body` to `url`, within `timeout` seconds in all.

    `msg_id` is the same on every try of a delivery (receivers deduplicate on it); `timestamp` is the
    time of this try on the wall clock, since receivers refuse a signature more than five minutes
    away from theirs. Redirects are not followed: the signature was made for this URL's owner.
    """
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL:
        target = httpx.URL()
    if target.scheme not in ("http", "https") or not target.host:
        return Attempt("refused", f"not an http(s) URL: {url[:100]!r}")
    sent_at = timestamp.astimezone(UTC)  # sign() reads the clock face as UTC
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(math.floor(sent_at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, sent_at, body),
        "content-type": "application/json",
    }
    try:
        # httpx's timeout is per connect/read/write; the outer one bounds a receiver that trickles.
        async with asyncio.timeout(timeout):
            async with client.stream("POST", target, content=body.encode(), headers=headers, timeout=timeout,
                                     follow_redirects=False) as response:
                excerpt = "" if response.is_success else await _excerpt(response)
    except (TimeoutError, httpx.TimeoutException):
        return Attempt("retry", f"timeout after {timeout} s")
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        return Attempt("refused", f"unusable URL: {exc}")
    except (httpx.TransportError, OSError) as exc:
        return Attempt("retry", f"connection failed: {type(exc).__name__}: {exc}"[:300])
    return _classify(response, excerpt)


def _classify(response: httpx.Response, excerpt: str) -> Attempt:
    status = response.status_code
    detail = f"{status} {response.reason_phrase}" + (f": {excerpt}" if excerpt else "")
    if response.is_success:
        return Attempt("delivered", detail)
    if status == 410:
        return Attempt("gone", detail)
    if status in (408, 429) or status >= 500:
        return Attempt("retry", detail, retry_after_seconds(response.headers.get("retry-after"),
                                                            _sent_at(response)))
    if response.is_redirect:
        detail += f" (to {response.headers.get('location', '?')[:100]}; redirects are not followed)"
    return Attempt("refused", detail)


async def _excerpt(response: httpx.Response) -> str:
    """The start of the body, without reading a large one whole."""
    taken = b""
    async for chunk in response.aiter_bytes():
        taken += chunk
        if len(taken) >= EXCERPT_CHARS * 4:  # a UTF-8 character is at most 4 bytes
            break
    return taken.decode("utf-8", errors="replace")[:EXCERPT_CHARS].strip()


def _sent_at(response: httpx.Response) -> datetime:
    """The receiver's own now (its Date header), against which its Retry-After date is meant."""
    try:
        return parsedate_to_datetime(response.headers["date"])
    except (KeyError, TypeError, ValueError):
        return datetime.now(UTC)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Retry-After (RFC 9110): a number of seconds, or an HTTP-date taken against `now`."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (_aware(when) - _aware(now)).total_seconds())


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # "-0000": UTC, not local time
