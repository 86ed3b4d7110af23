"""Wiring of notifier."""
from runtime.service import ServiceDefinition
from services.notifier import api, handlers
from services.notifier.projections import PROJECTIONS

SERVICE = ServiceDefinition(
    name="notifier",
    description="Staff directory, routing rules, inbox, deliveries and deadlines.",
    routers=[api.router],
    consumes=("screening",),
    handlers=handlers.HANDLERS,
    projections=PROJECTIONS,
)
