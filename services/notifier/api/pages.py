"""Web pages the notifier serves at the public address (`public_base_url`), outside /v1: the
household's declaration page (一户一码, 一键申报) that the QR code on its policy leaflet opens.

The server checks the link's token before anything else; a page with a valid one calls intake's API
from the browser (settings.service_urls, allowed by CORS), the token kept in the page's memory and
sent as a Bearer token only.
"""
from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from runtime.auth import decode_token
from runtime.problems import Problem
from runtime.service import Context
from runtime.settings import Settings
from services.notifier.pages_text import choose_language, risk_labels, texts

router = APIRouter(tags=["pages"])
TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).resolve().parents[1] / "templates"),
                        autoescape=select_autoescape(["html", "j2"]))


@router.get("/declare", response_class=HTMLResponse)
async def declare_page(request: Request, ctx: Context, token: str | None = None, lang: str | None = None):
    """The declaration page of the household the link's token names; any other link: a page saying
    the link is not valid, showing nothing of any household."""
    lang = choose_language(lang, request.headers.get("accept-language"))
    refused = token_refusal(ctx.settings, token)
    if refused:
        status, reason = refused
        return render("link_invalid.html.j2", lang, status, reason=reason)
    intake = ctx.settings.service_urls["intake"].rstrip("/")
    config = {"intake": intake, "token": token, "lang": lang, "text": texts(lang)}
    return render("declare.html.j2", lang, 200, config=config, risks=risk_labels(lang).items(), connect=origin(intake))


def token_refusal(settings: Settings, token: str | None) -> tuple[int, str] | None:
    """Why the link's token opens no page (status, text key): none, forged, expired, or not a
    household's; None when it is a valid household token."""
    if not token:
        return 401, "invalid.body"
    try:
        principal = decode_token(settings, token)
    except Problem as problem:
        return problem.status, "invalid.body"
    if principal.kind != "household":
        return 403, "invalid.not_household"
    return None


NONE = "'none'"


def render(template: str, lang: str, status: int, connect: str = "", **values) -> HTMLResponse:
    # A nonce lets the page's own style and script run and nothing injected; the page may only call
    # intake (connect-src). no-store and no-referrer: the link's token stays out of caches and of
    # the Referer header of the page's requests.
    nonce = secrets.token_urlsafe(16)
    html = TEMPLATES.get_template(template).render(lang=lang, t=texts(lang), nonce=nonce, **values)
    policy = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
              f"connect-src {connect or NONE}; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
              "frame-ancestors 'none'")
    return HTMLResponse(html, status_code=status, headers={
        "Content-Security-Policy": policy, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff"})


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
