"""Wiring of intake."""
from runtime.service import ServiceDefinition
from runtime.startup import public_address_problems
from services.intake import api, handlers, store

SERVICE = ServiceDefinition(
    name="intake",
    description="Household registry and risk clues from self-declaration, grid visits and department warnings.",
    routers=[api.router],
    consumes=(),
    handlers=handlers.HANDLERS,
    reference_data={"region_table": store.load_region_table, "indicator_thresholds": store.load_indicator_thresholds},
    start_checks=[public_address_problems],
)
