"""Wiring of screening."""
from runtime.service import ServiceDefinition
from services.screening import api, handlers

SERVICE = ServiceDefinition(
    name="screening",
    description="Verification cases, the identification ladder, monitoring subjects and removal.",
    routers=[api.router],
    consumes=("intake", "exit_review"),
    handlers=handlers.HANDLERS,
    periodic=[("scheduler_seconds", handlers.run_checks)],
    reference_data={"monitoring_lines": api.monitoring_lines},
)
