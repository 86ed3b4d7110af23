"""Who may read a service's API description and metrics (issue 13). `docs_access` (/docs, /redoc,
/openapi.json) and `metrics_access` (/metrics) are each "open", "token" (an administrator's or
operator's bearer token, staff or system) or "off" (the routes do not exist: 404). /healthz and
/readyz are always open.

The pages load Swagger UI and ReDoc from the installed package fastapi-offline, served at
/docs-assets, never from a CDN: a PC on an intranet without the internet gets a working page. The
assets are static files holding no data, so in "token" mode they are open (a <script src> carries no
token); in "off" mode they are not served."""
from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from runtime.auth import require
from runtime.settings import Settings

OPERATOR = require("administrator", "operator", kinds=("staff", "system"))
DOCS_ASSETS_URL = "/docs-assets"
# swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"


def docs_urls(settings: Settings) -> dict:
    """FastAPI's arguments for its own docs routes: its /openapi.json, which takes no dependency, is
    kept only when open; its /docs and /redoc point at a CDN, so they are never used."""
    openapi = {} if settings.docs_access == "open" else {"openapi_url": None}
    return {**openapi, "docs_url": None, "redoc_url": None}


def add_docs_and_metrics(app: FastAPI, settings: Settings) -> None:
    guard = [Depends(OPERATOR)]
    if settings.docs_access == "token":
        # The pages fetch /openapi.json, which needs the same token: whatever adds the header to the
        # page (a gateway, a browser extension) adds it to that fetch too.
        @app.get("/openapi.json", include_in_schema=False, dependencies=guard)
        async def openapi() -> JSONResponse:
            return JSONResponse(app.openapi())

    if settings.docs_access != "off":
        pages = guard if settings.docs_access == "token" else []
        app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

        @app.get("/docs", include_in_schema=False, dependencies=pages)
        async def swagger_ui() -> HTMLResponse:
            return get_swagger_ui_html(
                openapi_url="/openapi.json", title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css", swagger_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png",
                swagger_ui_parameters={"validatorUrl": None})  # no badge fetched from swagger.io

        @app.get("/redoc", include_in_schema=False, dependencies=pages)
        async def redoc() -> HTMLResponse:
            return get_redoc_html(
                openapi_url="/openapi.json", title=f"{app.title} - ReDoc",
                redoc_js_url=f"{DOCS_ASSETS_URL}/redoc.standalone.js", redoc_favicon_url=f"{DOCS_ASSETS_URL}/favicon.png",
                with_google_fonts=False)  # the fonts would come from Google

    if settings.metrics_access != "off":
        @app.get("/metrics", tags=["health"], dependencies=guard if settings.metrics_access == "token" else [])
        async def metrics() -> Response:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
