"""Pure decisions of screening: clues into cases, the identification ladder, eligibility, subjects, and the kinds of refusal of their rules."""
from services.screening.domain.clues import FIRST_STEP, MonitoredSubject, OpenCase, take_clue
from services.screening.domain.eligibility import Eligibility, Findings, Reason, ReasonCode, Recommendation, recommend
from services.screening.domain.ladder import CaseState, Step
from services.screening.domain.refusals import Invalid, NotAllowed, NotFound, OutOfOrder

__all__ = ["FIRST_STEP", "MonitoredSubject", "OpenCase", "take_clue", "Eligibility", "Findings", "Reason", "ReasonCode",
           "Recommendation", "recommend", "CaseState",
           "Step", "Invalid", "NotAllowed", "NotFound", "OutOfOrder"]
