"""Wiring of exit_review."""
from runtime.service import ServiceDefinition
from services.exit_review import handlers

SERVICE = ServiceDefinition(
    name="exit_review",
    description="Exit cases, the seven blockers, look-backs, rollbacks and statistics.",
    consumes=("screening",),
    handlers=handlers.HANDLERS,
)
