"""Events published by exit_review on `fangpin.exit_review.events`: exit cases (风险消除) and their
ladder, the seven blockers' verdicts (七不消), and the outcomes screening and assistance act on.

An exit case's stream is `exit-{exit_id}`; every event names the household, so its events keep their
order on the household's topic partition. `step` on a ladder event is where the case stands after it."""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel

from contracts.base import EventPayload

Party = Literal["household", "helper", "work_team", "village_committee"]  # 四方认可
Satisfaction = Literal["satisfied", "basically_satisfied", "dissatisfied"]
BlockerOutcome = Literal["pass", "fail", "unknown"]


class _ExitEvent(EventPayload):
    producer = "exit_review"


class _ExitStep(_ExitEvent):
    exit_id: str
    household_id: str
    step: str
    due_date: date | None = None  # when the step the case stands at is due (None: closed)


class ExitFindings(BaseModel):
    """The village's visit before proposing (怎么进、怎么出: the exit is verified as the entry was)."""

    visited_on: date
    per_capita_net_income: Decimal  # yuan per person per year, as at identification
    education_ok: bool
    medical_ok: bool
    housing_safe: bool
    water_safe: bool
    satisfaction: Satisfaction  # the household's own view of its situation and the help (家庭认可度)


class ExitProposed(_ExitStep):
    """The village proposes the subject's risk as eliminated, after its deliberation (村级评议)."""

    region_code: str
    findings: ExitFindings
    attendees: int
    minutes: str = ""


class ConsentRecorded(_ExitStep):
    """One of the four parties' consent (四方认可), with who gave it and when."""

    party: Party
    given: bool
    by: str  # the staff id, or for the household the member id of the member who signed
    recorded_by: str
    note: str = ""


class EvidenceItem(BaseModel):
    """One fact a blocker used: an event of another service (its id), or the case's own record."""

    kind: str  # income, measure, plan_gap, clue, risk_added, helper_visit, grid_visit, finding, consent, step
    ref: str | None = None  # the event id, measure id or clue id
    period: str | None = None  # an income's period
    on: date | None = None
    amount: Decimal | None = None
    detail: str = ""


class BlockerVerdict(BaseModel):
    blocker: str  # a code of kind exit_blocker (contracts/codes.py)
    outcome: BlockerOutcome
    reason: str
    evidence: list[EvidenceItem] = []
    missing: list[str] = []  # with `unknown`: the evidence that is not there


class ExitAssessed(_ExitStep):
    """The seven blockers 七不消 judged on the evidence; `passed` only if none failed or is unknown."""

    rule_version: str
    window_start: date
    window_end: date
    verdicts: list[BlockerVerdict]
    passed: bool


class ExitNoticePosted(_ExitStep):
    ends_on: date


class ExitObjectionRaised(_ExitStep):
    objection_id: str
    by: str
    reason: str


class ExitObjectionResolved(_ExitStep):
    objection_id: str
    upheld: bool
    note: str = ""


class ExitNoticeClosed(_ExitStep):
    ended_on: date


class ExitTownshipVerified(_ExitStep):
    """乡镇核实."""

    decision: Literal["pass", "return"]
    comment: str = ""


class ExitReturned(_ExitStep):
    """Sent back to the village (an objection upheld, the township's return): the case closes and the
    village proposes again when the reason is mended."""

    by: str  # the step that returned it
    reason: str


class ExitRejected(_ExitStep):
    """Not approved: blocked by the assessment (`blockers` names the ones that failed or are unknown),
    or rejected by the county."""

    level: Literal["assessment", "county"]
    reason: str
    blockers: list[str] = []


class ExitStepOverdue(_ExitEvent):
    """An exit case's step is past its due date (published once per step and due date)."""

    exit_id: str
    household_id: str
    region_code: str
    step: str
    due_date: date


class ExitApproved(_ExitEvent):
    """The county approved the exit: the subject's risk is eliminated (风险消除)."""

    exit_id: str
    household_id: str
    step: str = "closed"
    spot_checked: bool = False  # the county's spot check (抽查) of this household
    department_comparison: str = ""  # what the departments' data comparison (部门比对) showed
    comment: str = ""


class LookBackDue(_ExitEvent):
    """回头看: `exit_look_back_after_months` after its approval, the exit is to be looked back at."""

    exit_id: str
    household_id: str
    due_on: date


class LookBackCompleted(_ExitEvent):
    """The look-back: the blockers that read evidence judged again on what happened since the exit
    (income, measures, sudden difficulties, monitoring); `flagged` when an income fell below the
    line or a risk was raised after the exit (`flags` says which, with the evidence)."""

    exit_id: str
    household_id: str
    rule_version: str
    window_start: date
    window_end: date
    verdicts: list[BlockerVerdict]
    flagged: bool
    flags: list[EvidenceItem] = []
    note: str = ""


class ExitRollbackRequested(_ExitEvent):
    """The township asks the county to roll the exit back (风险消除回退申请)."""

    exit_id: str
    household_id: str
    reason: str


class ExitRolledBack(_ExitEvent):
    """风险消除回退: the exit was not right; the subject is monitored again."""

    exit_id: str
    household_id: str
    reason: str
    comment: str = ""  # the county's


class ExitRollbackRefused(_ExitEvent):
    """The county keeps the exit: the risk stays eliminated."""

    exit_id: str
    household_id: str
    comment: str


class StatisticsFiled(_ExitEvent):
    """A township files its month's figures (due by the 25th), a county its monthly report (due by the
    5th of the next month) (seed 001); the figures as filed, GET /v1/statistics's answer then."""

    region_code: str
    period: str
    level: Literal["township", "county"]
    due_on: date
    late: bool
    figures: dict


class FilingOverdue(_ExitEvent):
    """A township's or county's monthly filing not made by its due date (published once)."""

    region_code: str
    period: str
    level: Literal["township", "county"]
    due_on: date
