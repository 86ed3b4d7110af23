"""Events published by exit_review on `fangpin.exit_review.events` that other services act on.
(exit_review's own ladder events are added with its issue.)"""
from __future__ import annotations

from contracts.base import EventPayload


class _ExitEvent(EventPayload):
    producer = "exit_review"


class ExitApproved(_ExitEvent):
    """The county approved the exit: the subject's risk is eliminated (风险消除)."""

    exit_id: str
    household_id: str


class ExitRolledBack(_ExitEvent):
    """风险消除回退: the exit was not right; the subject is monitored again."""

    exit_id: str
    household_id: str
    reason: str
