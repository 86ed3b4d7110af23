"""Pure decisions of notifier: the staff directory, routing, working days, tasks' chains, deliveries' times."""
from services.notifier.domain.calendar import WorkingCalendar, end_of_day
from services.notifier.domain.routing import Route, RoutingTable, Rule
from services.notifier.domain.staff import REGION_LEVELS, RegisterStaff, staff_registered
from services.notifier.domain.tasks import TaskState, fold, plan_schedule, steps_due

__all__ = ["REGION_LEVELS", "RegisterStaff", "Route", "Rule", "RoutingTable", "TaskState",
           "WorkingCalendar", "end_of_day", "fold", "plan_schedule", "staff_registered", "steps_due"]
