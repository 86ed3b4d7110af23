"""Wiring of intake."""
from runtime.service import ServiceDefinition
from runtime.startup import public_address_problems
from services.intake import api, domain, handlers, reference
from services.intake.projections import PROJECTIONS

SERVICE = ServiceDefinition(
    name="intake",
    description="Household registry and risk clues from self-declaration, grid visits and department warnings.",
    routers=[api.router],
    consumes=(),
    handlers=handlers.HANDLERS,
    reference_data={"region_table": reference.load_region_table,
                    "indicator_thresholds": reference.load_indicator_thresholds},
    start_checks=[public_address_problems],
    projections=PROJECTIONS,
    refusal_statuses={
        domain.HouseholdNotFound: 404,
        domain.NotOwnHousehold: 403,
        domain.VisitRefused: 403,
        # Field rules: the request models report them as 422 naming the field; these two only
        # reach here if a command meets one in data it did not parse.
        domain.InvalidIdNumber: 422,
        domain.UnknownIndicator: 422,
    },
)
