"""A task's chain (督办): reminded before its due time, escalated one level up at a time when nobody
acknowledges it (village → township → county, counted in working days), stopped by an acknowledgement
or by the work being done. Pure: state + time → the steps due."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from contracts.base import EventPayload
from contracts.notifier import (ScheduledStep, TaskAcknowledged, TaskCompleted, TaskEscalated, TaskOpened,
                                TaskReminded)
from services.notifier.domain.calendar import WorkingCalendar
from services.notifier.domain.routing import ESCALATION_LEVELS, ROLE_AT_LEVEL


def levels_above(level: str) -> tuple[str, ...]:
    """The levels a task at `level` escalates to; a helper's task escalates like a village's."""
    start = ESCALATION_LEVELS.index("village" if level == "helper" else level) if level in (*ESCALATION_LEVELS, "helper") else None
    return () if start is None else ESCALATION_LEVELS[start + 1:]


def plan_schedule(*, due_at: datetime | None, level: str, role: str, now: datetime, calendar: WorkingCalendar,
                  tz: ZoneInfo, remind_days_before: int, escalate_after_days: list[int]) -> list[ScheduledStep]:
    """The chain of a task opened `now`: a reminder `remind_days_before` working days before it is due
    (none if that moment has passed), then one escalation per level above, the n-th
    `escalate_after_days[n]` working days after the due time (the last figure repeats)."""
    if due_at is None:
        return []
    steps = []
    remind_at = calendar.add_working_days(due_at, -remind_days_before, tz)
    if remind_days_before > 0 and remind_at > now:
        steps.append(ScheduledStep(action="remind", at=remind_at, level=level, role=role))
    for n, upper in enumerate(levels_above(level)):
        days = escalate_after_days[min(n, len(escalate_after_days) - 1)]
        steps.append(ScheduledStep(action="escalate", at=calendar.add_working_days(due_at, days, tz),
                                   level=upper, role=ROLE_AT_LEVEL[upper]))
    return steps


@dataclass
class TaskState:
    task_id: str
    reference: str
    region_code: str
    kind: str
    recipients: list[str]  # everyone told so far, the first level's first
    first_recipients: list[str]
    schedule: list[ScheduledStep]
    steps_done: int = 0
    closed: str | None = None  # acknowledged, completed
    acknowledged_by: str | None = None
    escalated_to: list[str] = field(default_factory=list)

    @property
    def next_action_at(self) -> datetime | None:
        if self.closed or self.steps_done >= len(self.schedule):
            return None
        return self.schedule[self.steps_done].at


def fold(events: list[EventPayload]) -> TaskState | None:
    state = None
    for event in events:
        if isinstance(event, TaskOpened):
            state = TaskState(event.task_id, event.reference, event.region_code, event.kind, list(event.recipients),
                              list(event.recipients), list(event.schedule))
        elif isinstance(event, (TaskReminded, TaskEscalated)):
            state.steps_done = event.step + 1
            if isinstance(event, TaskEscalated):
                state.escalated_to.append(event.level)
                state.recipients += [r for r in event.recipients if r not in state.recipients]
        elif isinstance(event, TaskAcknowledged):
            state.closed, state.acknowledged_by = "acknowledged", event.staff_id
        elif isinstance(event, TaskCompleted):
            state.closed = "completed"
    return state


def steps_due(state: TaskState, now: datetime) -> list[tuple[int, ScheduledStep]]:
    """The steps of the chain whose time has come and that are not yet taken, in order: each once,
    however late the check runs (a clock that jumped a week fires the reminder and both escalations)."""
    if state.closed:
        return []
    return [(i, step) for i, step in enumerate(state.schedule) if i >= state.steps_done and step.at <= now]
