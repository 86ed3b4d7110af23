"""notifier's HTTP surface, one module per resource: the staff directory and each member of staff's inbox;
and, outside /v1, the web pages served at the public address (pages_router)."""
from fastapi import APIRouter

from services.notifier.api import console, deliveries, inbox, pages, preferences, staff, subscriptions

router = APIRouter(prefix="/v1", tags=["notifier"])
for module in (staff, inbox, preferences, subscriptions, deliveries):
    router.include_router(module.router)

pages_router = APIRouter()
for module in (pages, console):  # the household's declaration page; the staff console
    pages_router.include_router(module.router)
