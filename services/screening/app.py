"""Wiring of screening."""
from runtime.service import ServiceDefinition
from contracts.reference import monitoring_lines
from services.screening import api, handlers, jobs
from services.screening.domain import Invalid, NotAllowed, NotFound, OutOfOrder
from services.screening.projections import PROJECTIONS

SERVICE = ServiceDefinition(
    name="screening",
    description="Verification cases, the identification ladder, monitoring subjects and removal.",
    routers=[api.router],
    consumes=("intake", "exit_review"),
    handlers=handlers.HANDLERS,
    periodic=[("scheduler_seconds", jobs.run_checks)],
    reference_data={"monitoring_lines": monitoring_lines},
    refusal_statuses={NotAllowed: 403, NotFound: 404, OutOfOrder: 409, Invalid: 422},
    projections=PROJECTIONS,
)
