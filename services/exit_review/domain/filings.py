"""Monthly filings (seed 001): a township files the month's figures by the 25th of the month, a county
its report by the 5th of the next; one filing each, late ones marked; a filing not made by its due
date is reported overdue once. Pure."""
from __future__ import annotations

from datetime import date

from contracts.base import EventPayload
from contracts.exit_review import FilingOverdue, StatisticsFiled
from services.exit_review.domain.refusals import Invalid, NotAllowed, OutOfOrder
from services.exit_review.domain.statistics import Period

LEVELS = {"township_officer": ("township", 9), "county_officer": ("county", 6)}  # role -> level, region code length


def due_on(level: str, period: Period) -> date:
    """A township's by the 25th of the month, a county's by the 5th of the next."""
    if level == "township":
        return period.start.replace(day=25)
    return date(period.end.year + period.end.month // 12, period.end.month % 12 + 1, 5)


def file(role: str, region: str, period: Period, already_filed: bool, today: date, figures: dict) -> list[EventPayload]:
    if role not in LEVELS:
        raise NotAllowed("exit_role_not_allowed", f"monthly figures are filed by a township or a county, not {role}",
                         allowed_roles=list(LEVELS))
    level, length = LEVELS[role]
    if len(region) != length:
        raise Invalid("filing_region_not_own_level", "region",
                      f"a {level} files for a {level} ({length} digits), not for {region!r}")
    if period.start.day != 1 or period.end.month != period.start.month:
        raise Invalid("statistics_period_invalid", "period", f"{period.label}: a filing is for a month, e.g. 2026-10")
    if already_filed:
        raise OutOfOrder("statistics_already_filed", f"{region} has filed {period.label} already", allowed_roles=[])
    due = due_on(level, period)
    return [StatisticsFiled(region_code=region, period=period.label, level=level, due_on=due, late=today > due,
                            figures=figures)]


def overdue(level: str, regions: list[str], period: Period, filed: set[str], reported: set[str],
            today: date) -> list[EventPayload]:
    """FilingOverdue for each of `regions` (those with subjects) not filed by its due date, once."""
    due = due_on(level, period)
    if today <= due:
        return []
    return [FilingOverdue(region_code=region, period=period.label, level=level, due_on=due)
            for region in regions if region not in filed and region not in reported]
