"""The seven blockers of an exit 七不消 (seed 000): 收入不持续稳定不消、“三保障”问题未解决不消、帮扶措施未落实不消、
家庭认可度不达标不消、突发困难未化解不消、动态监测不到位不消、程序不规范不消.

Each rule reads the evidence and answers `pass`, `fail` or `unknown` with the facts it used (event
ids, periods, amounts) or, when unknown, what is missing. `unknown` blocks like `fail`: a risk is
marked eliminated only on evidence. The look-back window is the `look_back_months` complete calendar
months before the month of the assessment (seed 003: 不少于半年)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from contracts.exit_review import BlockerVerdict, EvidenceItem
from services.exit_review.domain.evidence import CaseRecord, Evidence

RULE_VERSION = "qibuxiao-2026.1"
PARTIES = ("household", "helper", "work_team", "village_committee")  # 四方认可
SATISFACTION = ("dissatisfied", "basically_satisfied", "satisfied")  # lowest first
GUARANTEES = (("education_ok", "compulsory education"), ("medical_ok", "basic medical care"),
              ("housing_safe", "safe housing"), ("water_safe", "safe drinking water"))
LineOf = Callable[[str, int], Decimal | None]  # (region, year) -> yuan per person per year, None if none


@dataclass(frozen=True)
class ExitRules:
    look_back_months: int = 6
    satisfaction_bar: str = "basically_satisfied"  # the lowest satisfaction that passes
    findings_max_age_days: int = 30  # the exit visit is at most this old when the blockers are judged
    look_back_after_months: int = 6  # 回头看: months after the approval


@dataclass(frozen=True)
class Window:
    start: date  # the first day of its first month
    end: date  # the last day of its last month
    months: tuple[str, ...]  # 2026-05 … 2026-10


def look_back(today: date, months: int) -> Window:
    """The `months` complete calendar months before today's month."""
    end = today.replace(day=1) - timedelta(days=1)
    first, names, cursor = end, [], end
    for _ in range(months):
        first = cursor.replace(day=1)
        names.append(f"{first:%Y-%m}")
        cursor = first - timedelta(days=1)
    return Window(first, end, tuple(reversed(names)))


def _verdict(blocker: str, failing: list, missing: list[str], used: list[EvidenceItem], fail_reason: str,
             pass_reason: str) -> BlockerVerdict:
    if failing:
        return BlockerVerdict(blocker=blocker, outcome="fail", reason=fail_reason, evidence=failing)
    if missing:
        missing = list(dict.fromkeys(missing))
        return BlockerVerdict(blocker=blocker, outcome="unknown", reason="evidence missing: " + "; ".join(missing),
                              evidence=used, missing=missing)
    return BlockerVerdict(blocker=blocker, outcome="pass", reason=pass_reason, evidence=used)


def income_not_stable(evidence: Evidence, window: Window, line_of: LineOf) -> BlockerVerdict:
    """Every month of the window has its income (a month's record, else its quarter's) at or above
    the region's monitoring line for the period (a twelfth of the year's line a month, a quarter a
    quarter)."""
    by_period = {income.period: income for income in evidence.incomes}
    used: dict[str, EvidenceItem] = {}
    failing, missing = [], []
    for month in window.months:
        year = int(month[:4])
        quarter = f"{year}-Q{(int(month[5:]) - 1) // 3 + 1}"
        record, share = (by_period[month], 12) if month in by_period else (by_period.get(quarter), 4)
        if record is None:
            missing.append(f"the income of {month} (a record of {month} or {quarter})")
            continue
        if record.period in used:
            continue
        line = line_of(evidence.region_code, year)
        if line is None:
            missing.append(f"the monitoring line of region {evidence.region_code} for {year}")
            continue
        threshold = (line / share).quantize(Decimal("0.01"))
        item = EvidenceItem(kind="income", ref=record.event_id, period=record.period, amount=record.amount,
                            detail=f"the line for the period: {threshold}")
        used[record.period] = item
        if record.amount < threshold:
            failing.append(item)
    periods = ", ".join(i.period for i in failing)
    return _verdict("income_not_stable", failing, missing, list(used.values()),
                    f"income per person below the monitoring line in {periods}",
                    f"income at or above the monitoring line in every month from {window.months[0]} to {window.months[-1]}")


def guarantees_unresolved(case: CaseRecord) -> BlockerVerdict:
    """The exit visit finds the three guarantees and safe water assured (两不愁三保障及饮水安全)."""
    findings = case.findings
    if findings is None:
        return _verdict("guarantees_unresolved", [], ["the exit visit's findings on education, medical care, housing "
                                                      "and water"], [], "", "")
    items = [EvidenceItem(kind="finding", on=findings.visited_on, detail=f"{name}: {str(getattr(findings, name)).lower()}")
             for name, _ in GUARANTEES]
    failing = [item for item, (name, _) in zip(items, GUARANTEES) if not getattr(findings, name)]
    unassured = [what for name, what in GUARANTEES if not getattr(findings, name)]
    return _verdict("guarantees_unresolved", failing, [], items, f"not assured: {', '.join(unassured)}",
                    "education, medical care, housing and drinking water assured at the exit visit")


def measures_not_carried_out(evidence: Evidence, today: date) -> BlockerVerdict:
    """Each measure is carried out: none active past its planned end, no plan gap open, at least one
    measure on the plan."""
    if not evidence.plan_known:
        return _verdict("measures_not_carried_out", [], ["the household's plan (assistance)"], [], "", "")
    overdue = [m for m in evidence.measures if m.status == "active" and m.planned_end and m.planned_end < today]
    failing = [EvidenceItem(kind="measure", ref=m.measure_id, on=m.planned_end,
                            detail=f"{m.kind} active past its planned end") for m in overdue]
    failing += [EvidenceItem(kind="plan_gap", ref=g.event_id, on=g.found_on,
                             detail=g.gap + (f" ({g.risk_type})" if g.risk_type else "")) for g in evidence.open_gaps]
    carried = [m for m in evidence.measures if m.status in ("active", "completed")]
    if not carried:
        failing.append(EvidenceItem(kind="measure", detail="no measure on the plan"))
    used = [EvidenceItem(kind="measure", ref=m.measure_id, on=m.completed_on or m.starts_on, detail=f"{m.kind} {m.status}")
            for m in carried]
    return _verdict("measures_not_carried_out", failing, [], used,
                    "; ".join(item.detail for item in failing), "every measure carried out or under way, no plan gap open")


def household_consent_insufficient(case: CaseRecord, rules: ExitRules) -> BlockerVerdict:
    """The four parties consented, and the household is at least as satisfied as the bar."""
    used, failing, missing = [], [], []
    for party in PARTIES:
        consent = case.consents.get(party)
        if consent is None:
            missing.append(f"the consent of the {party.replace('_', ' ')}")
            continue
        item = EvidenceItem(kind="consent", ref=consent.event_id, on=consent.recorded_on,
                            detail=f"{party} {'consented' if consent.given else 'did not consent'} ({consent.by})")
        used.append(item)
        if not consent.given:
            failing.append(item)
    if case.findings is None:
        missing.append("the household's satisfaction (the exit visit)")
    else:
        item = EvidenceItem(kind="finding", on=case.findings.visited_on, detail=f"satisfaction: {case.findings.satisfaction}")
        used.append(item)
        if SATISFACTION.index(case.findings.satisfaction) < SATISFACTION.index(rules.satisfaction_bar):
            failing.append(item)
    return _verdict("household_consent_insufficient", failing, missing, used,
                    "; ".join(item.detail for item in failing), "the four parties consented; the household is satisfied")


def sudden_difficulty_unresolved(evidence: Evidence, window: Window, today: date) -> BlockerVerdict:
    """Each risk raised since the window began (a clue, a new risk) has a measure answering it
    completed on or after the day it was raised."""
    used, failing = [], []
    for difficulty in evidence.difficulties:
        if not window.start <= difficulty.raised_on <= today:
            continue
        answering = [m for m in evidence.measures if m.status == "completed" and m.completed_on
                     and m.completed_on >= difficulty.raised_on and set(m.answers) & set(difficulty.risk_types)]
        item = EvidenceItem(kind=difficulty.kind, ref=difficulty.event_id, on=difficulty.raised_on,
                            detail=f"{difficulty.ref}: {', '.join(difficulty.risk_types)}"
                                   + (f"; answered by {answering[0].measure_id}" if answering else "; unanswered"))
        (used if answering else failing).append(item)
        if answering:
            used.append(EvidenceItem(kind="measure", ref=answering[0].measure_id, on=answering[0].completed_on,
                                     detail=f"{answering[0].kind} completed"))
    return _verdict("sudden_difficulty_unresolved", failing, [], used,
                    f"{len(failing)} risk(s) raised since {window.start} without a completed measure answering them",
                    f"every risk raised since {window.start} answered by a completed measure")


def monitoring_lapsed(evidence: Evidence, window: Window) -> BlockerVerdict:
    """A helper or the grid worker visited in every month of the window."""
    by_month: dict[str, list] = {}
    for visit in evidence.visits:
        by_month.setdefault(f"{visit.on:%Y-%m}", []).append(visit)
    used = [EvidenceItem(kind=v.kind, ref=v.event_id, on=v.on) for month in window.months for v in by_month.get(month, [])]
    failing = [EvidenceItem(kind="visit", period=month, detail=f"no visit in {month}")
               for month in window.months if month not in by_month]
    return _verdict("monitoring_lapsed", failing, [], used,
                    "no helper's or grid worker's visit in " + ", ".join(item.period for item in failing),
                    f"visited in every month from {window.months[0]} to {window.months[-1]}")


def procedure_irregular(case: CaseRecord, today: date, rules: ExitRules) -> BlockerVerdict:
    """The steps so far are there, in order and in time: the exit visit before the proposal and at
    most `findings_max_age_days` old, a deliberation with attendees, each consent after the visit."""
    findings = case.findings
    if findings is None:
        return _verdict("procedure_irregular", [], ["the exit visit"], [], "", "")
    visit = EvidenceItem(kind="step", on=findings.visited_on, detail="exit visit")
    proposal = EvidenceItem(kind="step", on=case.proposed_on, detail=f"village deliberation, {case.attendees} attending")
    failing = []
    age = (today - findings.visited_on).days
    if age > rules.findings_max_age_days:
        failing.append(visit.model_copy(update={"detail": f"exit visit {age} days before the assessment "
                                                          f"(at most {rules.findings_max_age_days})"}))
    if findings.visited_on > case.proposed_on:
        failing.append(visit.model_copy(update={"detail": "exit visit after the village's proposal"}))
    if case.attendees < 1:
        failing.append(proposal.model_copy(update={"detail": "a village deliberation without attendees"}))
    for consent in case.consents.values():
        if consent.recorded_on < findings.visited_on:
            failing.append(EvidenceItem(kind="consent", ref=consent.event_id, on=consent.recorded_on,
                                        detail=f"{consent.party}'s consent before the exit visit"))
    return _verdict("procedure_irregular", failing, [], [visit, proposal],
                    "; ".join(item.detail for item in failing), "the steps so far in order and in time")


def assess(evidence: Evidence, case: CaseRecord, today: date, rules: ExitRules,
           line_of: LineOf) -> tuple[Window, list[BlockerVerdict]]:
    """Every blocker's verdict, in the order of the seed."""
    window = look_back(today, rules.look_back_months)
    return window, [
        income_not_stable(evidence, window, line_of),
        guarantees_unresolved(case),
        measures_not_carried_out(evidence, today),
        household_consent_insufficient(case, rules),
        sudden_difficulty_unresolved(evidence, window, today),
        monitoring_lapsed(evidence, window),
        procedure_irregular(case, today, rules),
    ]
