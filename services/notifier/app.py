"""Wiring of notifier."""
from runtime.service import ServiceDefinition
from services.notifier import api, handlers, jobs
from services.notifier.projections import PROJECTIONS
from services.notifier.reference import routing_table, working_calendar

SERVICE = ServiceDefinition(
    name="notifier",
    description="Staff directory, routing rules, inbox, deliveries and deadlines.",
    routers=[api.router, api.pages_router],
    consumes=handlers.CONSUMES,
    handlers=handlers.HANDLERS,
    periodic=[("task_check_seconds", jobs.take_task_steps), ("delivery_poll_seconds", jobs.deliver_due)],
    reference_data={"notifier_routing": routing_table, "working_calendar": working_calendar},
    projections=PROJECTIONS,
)
