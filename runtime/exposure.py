"""Who may read a service's API description and metrics (issue 13). `docs_access` (/docs, /redoc,
/openapi.json) and `metrics_access` (/metrics) are each "open", "token" (an administrator's or
operator's bearer token, staff or system) or "off" (the routes do not exist: 404). /healthz and
/readyz are always open."""
from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from runtime.auth import require
from runtime.settings import Settings

OPERATOR = require("administrator", "operator", kinds=("staff", "system"))


def docs_urls(settings: Settings) -> dict:
    """FastAPI's arguments for its own docs routes, which take no dependency: kept only when open."""
    return {} if settings.docs_access == "open" else {"openapi_url": None, "docs_url": None, "redoc_url": None}


def add_docs_and_metrics(app: FastAPI, settings: Settings) -> None:
    guard = [Depends(OPERATOR)]
    if settings.docs_access == "token":
        # The pages fetch /openapi.json, which needs the same token: whatever adds the header to the
        # page (a gateway, a browser extension) adds it to that fetch too.
        @app.get("/openapi.json", include_in_schema=False, dependencies=guard)
        async def openapi() -> JSONResponse:
            return JSONResponse(app.openapi())

        @app.get("/docs", include_in_schema=False, dependencies=guard)
        async def swagger_ui() -> HTMLResponse:
            return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - Swagger UI")

        @app.get("/redoc", include_in_schema=False, dependencies=guard)
        async def redoc() -> HTMLResponse:
            return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - ReDoc")

    if settings.metrics_access != "off":
        @app.get("/metrics", tags=["health"], dependencies=guard if settings.metrics_access == "token" else [])
        async def metrics() -> Response:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
