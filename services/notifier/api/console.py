"""The staff console (工作台), GET /console at the public address: a member of staff pastes their token,
sees their inbox live (GET /v1/inbox, then /v1/inbox/stream read with fetch(): EventSource cannot send
the Authorization header), opens a notification (a case, or a household's plan),
and for a case takes the step of the identification
ladder their role may take by calling screening's API from the browser (settings.service_urls,
allowed by CORS).

The server renders the same page for everyone and knows no token: the page keeps it in
sessionStorage, sends it as a Bearer token only, and the APIs it calls judge it.
"""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from runtime.service import Context
from services.notifier.api.pages import origin, render
from services.notifier.pages_text import choose_language, console_labels

router = APIRouter(tags=["pages"])

# Who may take each step of screening's identification ladder (screening's ladder.ROLES, which
# screening enforces: this only decides which form the page offers).
STEP_ROLES: dict[str, list[str]] = {
    "verification_visit": ["grid_worker", "village_cadre", "work_team"],
    "village_deliberation": ["village_cadre"],
    "township_review": ["township_officer"],
    "county_decision": ["county_officer"],
}


@router.get("/console", response_class=HTMLResponse)
async def console_page(request: Request, ctx: Context, lang: str | None = None):
    lang = choose_language(lang, request.headers.get("accept-language"))
    urls = {name: url.rstrip("/") for name, url in ctx.settings.service_urls.items()}
    config = {"notifier": urls.get("notifier", ""), "screening": urls.get("screening", ""),
              "assistance": urls.get("assistance", ""), "lang": lang,
              "step_roles": STEP_ROLES, **console_labels(lang)}
    connect = " ".join(dict.fromkeys(["'self'", *(origin(url) for url in urls.values())]))
    return render("console.html.j2", lang, 200, connect=connect, config=config)
