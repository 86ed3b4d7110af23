"""Request body limits (issue 13). A JSON endpoint reads its body whole before it runs, so a body
larger than `max_body_bytes` is refused with 413 while it arrives, before anything holds all of it.
NDJSON batch endpoints (`:import`, `:batch`) stream their bodies and have no total limit; each of
their lines is limited instead (`max_ndjson_line_bytes`, runtime.ndjson)."""
from __future__ import annotations

import orjson
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.idempotency import EXCLUDED_SUFFIXES as STREAMED_SUFFIXES
from runtime.problems import PROBLEM_JSON, Problem


def streamed_paths(app: FastAPI) -> frozenset[str]:
    """The paths of the NDJSON batch endpoints, exactly (taken from the API description, which lists
    included routers' routes by their full path): a test of the suffix alone would let a body of any
    size through to a JSON endpoint `/x/{id}` called as `/x/1:batch`."""
    paths = get_openapi(title=app.title, version=app.version, routes=app.routes)["paths"]
    return frozenset(path for path in paths if path.endswith(STREAMED_SUFFIXES) and "{" not in path)


class BodyTooLarge(Exception):
    """Raised into the app by the receive channel; the middleware answers 413 in its place."""


class BodyLimitMiddleware:
    """Counts a request's body bytes as they are received (never holding them) and answers 413 once
    they pass the limit, or at once when Content-Length says they will. Must sit outside anything
    that reads the whole body (IdempotencyMiddleware)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, streamed: frozenset[str]) -> None:
        self.app, self.limit, self.streamed = app, max_body_bytes, streamed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.streamed:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(scope, send)
            return
        received, refused, started = 0, False, False

        async def counting_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    refused = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused and not started:
                return  # the app's own answer to BodyTooLarge (FastAPI makes it a 400) gives way to the 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            # Whatever the app made of BodyTooLarge; a response already started cannot become a 413.
            if not refused or started:
                raise
        if refused and not started:
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        message = f"the request body exceeds {self.limit} bytes (max_body_bytes)"
        problem = Problem(413, "Content too large",
                          f"{message}; split it, or send rows as NDJSON to a :import/:batch endpoint",
                          code="body_too_large", errors=[{"field": "(body)", "message": message}],
                          max_body_bytes=self.limit)
        body = orjson.dumps(problem.body(scope["path"]))
        # No "Connection: close": a client still sending would meet a closed socket and never read
        # the 413; the server discards the rest of the body instead, without the app.
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
