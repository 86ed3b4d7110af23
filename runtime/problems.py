"""Errors as RFC 9457 problem details (`application/problem+json`)."""
from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import asyncpg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from contracts.reference import MissingRegionYearValue
from runtime.db import is_database_outage, sqlstate_of

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
DATABASE_RETRY_AFTER_SECONDS = 5


# The code of a refusal that has no rule of its own but its status (an unknown path, a wrong method).
_STATUS_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}


def status_code(status: int) -> str:
    return _STATUS_CODES.get(status, "http_error")


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem document. `code` names the rule that
    refused (contracts/codes.py; an extension member, RFC 9457 §3.2): callers match on it, never on
    the title or detail. Each of `errors` (field, message) without a code of its own takes it."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        code: str | None = None,
        type_: str = "about:blank",
        errors: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.code = code or status_code(status)
        errors = [{**error, "code": error.get("code", self.code)} for error in errors] if errors else errors
        self.status, self.title, self.detail, self.type, self.errors, self.extra = (
            status, title, detail, type_, errors, extra,
        )

    def body(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status, "code": self.code}
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


# pydantic puts these before what a validator's ValueError or assert says; people read the rest.
_VALIDATOR_PREFIXES = ("Value error, ", "Assertion failed, ")


def plain_message(error: dict[str, Any]) -> str:
    """The message of one of pydantic's validation errors, said plainly."""
    message = error.get("msg", "invalid")
    for prefix in _VALIDATOR_PREFIXES:
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


CONFIGURATION_ERROR = "https://fangpin.dev/problems/configuration-error"


def configuration_problem(missing: MissingRegionYearValue, detail: str = "", **extra: Any) -> Problem:
    """Deployment data lacks a row (contracts.reference): the request was right and nothing of it was
    stored; an operator adds the row it names, then the same request succeeds."""
    return Problem(500, "Configuration error", f"{missing}{detail}", code="configuration_missing_row",
                   type_=CONFIGURATION_ERROR, **extra)


def field_error(field: str, message: str, *, code: str) -> Problem:
    return Problem(422, "Invalid request", f"{field}: {message}", code=code, errors=[{"field": field, "message": message}])


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


def _unreadable_body(cause: BaseException | None) -> Problem | None:
    """What FastAPI answers as "There was an error parsing the body" (400), said with its rule."""
    if isinstance(cause, RecursionError):
        code, message = "json_too_deep", "JSON nested too deeply (more levels than any request of this API has)"
    elif isinstance(cause, UnicodeDecodeError):
        code, message = "body_not_utf8", f"not UTF-8: byte {cause.start} cannot be decoded; send the body as UTF-8"
    else:
        return None
    return Problem(400, "Invalid request", f"the body is {message}", code=code,
                   errors=[{"field": "(body)", "message": message}])


_REFUSAL_TITLES = {403: "Forbidden", 404: "Not found", 409: "Conflict", 422: "Invalid request"}  # as the rest say


def _refusal_handler(status: int):
    """A domain refusal (contracts.codes.Refusal) as a problem document of `status`."""

    async def handle(request: Request, refusal: Exception):
        details = getattr(refusal, "details", {})
        title = _REFUSAL_TITLES.get(status) or HTTPStatus(status).phrase
        return problem_response(Problem(status, title, str(refusal), code=refusal.code, **details), request)

    return handle


def install_problem_handlers(app: FastAPI, refusal_statuses: dict[type[Exception], int] | None = None) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem):
        return problem_response(exc, request)

    for refusal, status in (refusal_statuses or {}).items():
        app.add_exception_handler(refusal, _refusal_handler(status))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = []
        for e in exc.errors():
            message = plain_message(e)
            if e.get("type") == "json_invalid":
                message = f"malformed JSON: {e.get('ctx', {}).get('error', message)}"
            # pydantic's error type, or the code of one of our rules (PydanticCustomError)
            errors.append({"field": _location(tuple(e.get("loc", ()))), "message": message, "code": e["type"]})
        detail = "; ".join(f"{x['field']}: {x['message']}" for x in errors)
        return problem_response(Problem(422, "Invalid request", detail, code="invalid_request", errors=errors), request)

    @app.exception_handler(MissingRegionYearValue)
    async def _configuration(request: Request, exc: MissingRegionYearValue):
        log.error("configuration error on %s %s: %s", request.method, request.url.path, exc)
        return problem_response(configuration_problem(exc), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return problem_response(_unreadable_body(exc.__cause__) or Problem(
            exc.status_code, str(exc.detail), code=status_code(exc.status_code)), request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        if is_database_outage(exc):
            # Not a bug: the database is starting, restarting or unreachable. Nothing was stored.
            log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
            response = problem_response(Problem(503, "Service unavailable", "the database is not available right now "
                                                "and nothing was stored; send the request again shortly (with the "
                                                "same Idempotency-Key)", code="database_unavailable"), request)
            response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
            return response
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(Problem(500, "Internal error", "the error was logged; try again", code="internal_error"),
                                request)

    async def _data_refused(request: Request, exc: Exception):
        if _unstorable_text(exc):  # batch rows are checked one by one (nul_field); this catches the rest
            return problem_response(Problem(422, "Invalid request", f"a text field {NUL_IN_TEXT}", code="text_holds_nul"),
                                    request)
        return await _unexpected(request, exc)

    # The driver's own error (bulk writes) and SQLAlchemy's wrapping of it (the rest).
    for refused in (asyncpg.exceptions.DataError, sqlalchemy.exc.DataError):
        app.exception_handler(refused)(_data_refused)
