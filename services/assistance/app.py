"""Wiring of assistance."""
from runtime.service import ServiceDefinition
from services.assistance import handlers

SERVICE = ServiceDefinition(
    name="assistance",
    description="Assistance plans, helpers, measures, incomes and plan gaps.",
    consumes=("screening",),
    handlers=handlers.HANDLERS,
)
