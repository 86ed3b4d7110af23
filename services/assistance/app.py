"""Wiring of assistance."""
from runtime.service import ServiceDefinition
from runtime.settings import Settings
from services.assistance import api, handlers, jobs, reference
from services.assistance.domain import refusals
from services.assistance.domain import CatalogueError
from services.assistance.projections import PROJECTIONS


def catalogue_problems(settings: Settings) -> list[str]:
    """The measures catalogue loads (the one shipped, or FANGPIN_MEASURES_CATALOGUE)."""
    try:
        reference.measures_catalogue(settings.measures_catalogue)
    except (OSError, CatalogueError) as exc:
        return [f"FANGPIN_MEASURES_CATALOGUE: {exc}"]
    return []


SERVICE = ServiceDefinition(
    name="assistance",
    description="Assistance plans (一户一案): helpers, measures, incomes and plan gaps.",
    routers=[api.router],
    consumes=("intake", "screening", "exit_review", "notifier"),
    handlers=handlers.HANDLERS,
    periodic=[("plan_check_seconds", jobs.check_open_plans)],
    start_checks=[catalogue_problems],
    refusal_statuses={refusals.NotFound: 404, refusals.NotAllowed: 403, refusals.Invalid: 422, refusals.OutOfOrder: 409},
    projections=PROJECTIONS,
)
