"""`Idempotency-Key` on every POST: the same key and body gives the same answer and no second effect.

A key belongs to the whole principal (kind, role, region, department, sub): two tokens that share a
`sub` but not a role are different callers and never see each other's answers. A household's token
may come as `?token=` (its QR link) as well as a Bearer token.

A request claims its key before it runs (a row with no answer yet, `owner` = the process's lease,
runtime.liveness) and stores the answer after. A second request meanwhile gets 409. A claim whose
request is gone - its process died (no session holds the owner's lock) or it is older than
`idempotency_in_progress_seconds` - is taken over by the next request with the key, which then runs
as new; otherwise a killed process would leave its keys answering 409 for ever.

Bulk NDJSON endpoints (`:import`, `:batch`) are excluded: their bodies can be a million rows, and
each of their rows is idempotent by its own natural key.
"""
from __future__ import annotations

import hashlib
from datetime import timedelta
from urllib.parse import parse_qs

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.auth import Principal, decode_token
from runtime.liveness import dead_owner_condition
from runtime.problems import PROBLEM_JSON, Problem
from runtime.tables import idempotency_keys

EXCLUDED_SUFFIXES = (":import", ":batch")


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, state_holder) -> None:
        self.app, self.state_holder = app, state_holder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].endswith(EXCLUDED_SUFFIXES):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        key = headers.get("idempotency-key")
        ctx = getattr(self.state_holder.state, "context", None)
        principal = _principal_id(ctx, headers.get("authorization", ""), scope.get("query_string", b""))
        if not key or ctx is None or principal is None:
            await self.app(scope, receive, send)
            return

        body = await _read_body(receive)
        request_hash = hashlib.sha256(
            scope["path"].encode() + b"?" + scope.get("query_string", b"") + b"\n" + body
        ).hexdigest()
        lease = getattr(self.state_holder.state, "lease", None)
        this_key = (idempotency_keys.c.principal == principal) & (idempotency_keys.c.key == key)
        async with ctx.sessions() as session, session.begin():
            claimed_at = await claim(session, principal, key, request_hash, lease.key if lease else None,
                                     timedelta(seconds=ctx.settings.idempotency_in_progress_seconds))
            stored = None if claimed_at else (
                await session.execute(sa.select(idempotency_keys).where(this_key))).first()
        if stored is not None:
            await _answer_from_store(stored, request_hash, send)
            return

        captured: dict = {"status": 500, "content_type": None, "body": bytearray()}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                for k, v in message.get("headers", []):
                    if k.lower() == b"content-type":
                        captured["content_type"] = v.decode("latin-1")
            elif message["type"] == "http.response.body":
                captured["body"].extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, _replay(body), capture)
        finally:
            async with ctx.sessions() as session, session.begin():
                # Only our own claim: one taken over meanwhile (we ran past the timeout) is the
                # newer request's to answer.
                where = this_key & (idempotency_keys.c.created_at == claimed_at)
                if captured["status"] < 500:
                    await session.execute(
                        sa.update(idempotency_keys).where(where).values(
                            status_code=captured["status"], content_type=captured["content_type"], body=bytes(captured["body"])
                        )
                    )
                else:  # a server error is not an answer to remember; the client may retry
                    await session.execute(sa.delete(idempotency_keys).where(where))


async def claim(session, principal: str, key: str, request_hash: str, owner: int | None, timeout: timedelta):
    """Claim the key for this request: a new row, or the row of a request that is gone. Returns
    the claim's created_at (what the answer is stored against), or None when the key is taken."""
    claimed_at = await session.scalar(
        pg_insert(idempotency_keys)
        .values(principal=principal, key=key, request_hash=request_hash, owner=owner)
        .on_conflict_do_nothing()
        .returning(idempotency_keys.c.created_at)
    )
    if claimed_at is not None:
        return claimed_at
    # One statement, so of two requests that find the same dead claim only one takes it: the
    # other waits for the row, and its WHERE, checked again on the row the first one wrote, finds a
    # live owner and a fresh created_at.
    return await session.scalar(
        sa.update(idempotency_keys)
        .where(idempotency_keys.c.principal == principal, idempotency_keys.c.key == key,
               idempotency_keys.c.status_code.is_(None),
               dead_owner_condition(idempotency_keys.c.owner)
               | (idempotency_keys.c.created_at < sa.func.now() - timeout))
        .values(request_hash=request_hash, owner=owner, created_at=sa.func.now())
        .returning(idempotency_keys.c.created_at)
    )


def principal_scope(principal: Principal) -> str:
    """The caller a key belongs to: every claim of the token, not just `sub`, as canonical JSON."""
    return orjson.dumps([principal.kind, principal.role, principal.region, principal.department,
                         principal.sub]).decode()


def _principal_id(ctx, authorization: str, query_string: bytes) -> str | None:
    # The token the endpoints read: a Bearer token, else a household's QR link token (?token=).
    scheme, _, token = authorization.partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    if not token:
        token = next(iter(parse_qs(query_string.decode("latin-1")).get("token", [])), "")
    if ctx is None or not token:
        return None
    try:
        return principal_scope(decode_token(ctx.settings, token))
    except Problem:
        return None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _answer_from_store(stored, request_hash: str, send: Send) -> None:
    if stored.request_hash != request_hash:
        problem = Problem(422, "Idempotency-Key reused", "this Idempotency-Key was used with a different request body; use a new key",
                          code="idempotency_key_reused",
                          errors=[{"field": "Idempotency-Key", "message": "already used with a different body"}])
        status, content_type, body = 422, PROBLEM_JSON, orjson.dumps(problem.body())
    elif stored.status_code is None:
        problem = Problem(409, "Request in progress", "a request with this Idempotency-Key is still being processed; retry shortly",
                          code="idempotency_in_progress")
        status, content_type, body = 409, PROBLEM_JSON, orjson.dumps(problem.body())
    else:
        status, content_type, body = stored.status_code, stored.content_type or "application/json", stored.body or b""
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", content_type.encode()), (b"idempotent-replayed", b"true"),
        (b"content-length", str(len(body)).encode()),
    ]})
    await send({"type": "http.response.body", "body": body})
