"""Wiring of intake."""
from runtime.service import ServiceDefinition
from services.intake import api, handlers

SERVICE = ServiceDefinition(
    name="intake",
    description="Household registry and risk clues from self-declaration, grid visits and department warnings.",
    routers=[api.router],
    consumes=(),
    handlers=handlers.HANDLERS,
)
