"""Wiring of exit_review."""
from contracts.reference import monitoring_lines
from runtime.service import ServiceDefinition
from services.exit_review import api, handlers, jobs
from services.exit_review.domain.refusals import Invalid, NotAllowed, NotFound, OutOfOrder
from services.exit_review.projections import PROJECTIONS

SERVICE = ServiceDefinition(
    name="exit_review",
    description="Exit cases, the seven blockers, look-backs, rollbacks and statistics.",
    routers=[api.router],
    consumes=("intake", "screening", "assistance"),
    handlers=handlers.HANDLERS,
    periodic=[("scheduler_seconds", jobs.run_checks)],
    reference_data={"monitoring_lines": monitoring_lines},
    refusal_statuses={NotAllowed: 403, NotFound: 404, OutOfOrder: 409, Invalid: 422},
    projections=PROJECTIONS,
)
