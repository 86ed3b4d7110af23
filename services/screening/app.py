"""Wiring of screening."""
from runtime.service import ServiceDefinition
from services.screening import api, handlers

SERVICE = ServiceDefinition(
    name="screening",
    description="Verification cases, the identification ladder, monitoring subjects and removal.",
    routers=[api.router],
    consumes=("intake",),
    handlers=handlers.HANDLERS,
    periodic=[("notice_check_seconds", handlers.close_due_notices)],
)
