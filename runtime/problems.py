"""Errors as RFC 9457 problem details (`application/problem+json`)."""
from __future__ import annotations

import logging
from typing import Any

import asyncpg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from runtime.db import is_database_outage, sqlstate_of

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
DATABASE_RETRY_AFTER_SECONDS = 5


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type_: str = "about:blank",
        errors: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.type, self.errors, self.extra = (
            status, title, detail, type_, errors, extra,
        )

    def body(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            doc["detail"] = self.detail
        if instance:
            doc["instance"] = instance
        if self.errors:
            doc["errors"] = self.errors
        doc.update(self.extra)
        return doc


NUL_IN_TEXT = "holds the NUL character (\\u0000), which PostgreSQL text cannot store; remove it"


def nul_field(value: Any, path: str = "") -> str | None:
    """Where the first string holding NUL is in a decoded JSON value ("members[0].name"), if any."""
    if isinstance(value, str):
        return (path or "(the value)") if "\x00" in value else None
    if isinstance(value, dict):
        items = ((f"{path}.{key}" if path else str(key), item) for key, item in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{i}]", item) for i, item in enumerate(value))
    else:
        return None
    return next((found for where, item in items if (found := nul_field(item, where))), None)


def _unstorable_text(exc: BaseException | None) -> bool:
    """The database refused a text value for a character it cannot hold (NUL, SQLSTATE 22P05 / 22021)."""
    return sqlstate_of(exc) in ("22P05", "22021")


def field_error(field: str, message: str) -> Problem:
    return Problem(422, "Invalid request", f"{field}: {message}", errors=[{"field": field, "message": message}])


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if problem.status == 401 else None
    return JSONResponse(
        problem.body(str(request.url.path) if request else None),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _location(loc: tuple) -> str:
    # ("body", "members", 0, "id_number") -> "members[0].id_number"
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or ".".join(str(p) for p in loc)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem):
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = []
        for e in exc.errors():
            message = e.get("msg", "invalid")
            if e.get("type") == "json_invalid":
                message = f"malformed JSON: {e.get('ctx', {}).get('error', message)}"
            errors.append({"field": _location(tuple(e.get("loc", ()))), "message": message})
        detail = "; ".join(f"{x['field']}: {x['message']}" for x in errors)
        return problem_response(Problem(422, "Invalid request", detail, errors=errors), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return problem_response(Problem(exc.status_code, str(exc.detail)), request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        if is_database_outage(exc):
            # Not a bug: the database is starting, restarting or unreachable. Nothing was stored.
            log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
            response = problem_response(Problem(503, "Service unavailable", "the database is not available right now "
                                                "and nothing was stored; send the request again shortly (with the "
                                                "same Idempotency-Key)"), request)
            response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
            return response
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(Problem(500, "Internal error", "the error was logged; try again"), request)

    async def _data_refused(request: Request, exc: Exception):
        if _unstorable_text(exc):  # batch rows are checked one by one (nul_field); this catches the rest
            return problem_response(Problem(422, "Invalid request", f"a text field {NUL_IN_TEXT}"), request)
        return await _unexpected(request, exc)

    # The driver's own error (bulk writes) and SQLAlchemy's wrapping of it (the rest).
    for refused in (asyncpg.exceptions.DataError, sqlalchemy.exc.DataError):
        app.exception_handler(refused)(_data_refused)
