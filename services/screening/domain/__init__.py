"""Pure decisions of screening: clues into cases, the identification ladder, eligibility, monitoring lines."""
from services.screening.domain.clues import FIRST_STEP, MonitoredSubject, OpenCase, take_clue
from services.screening.domain.eligibility import Eligibility, Findings, Reason, ReasonCode, Recommendation, recommend
from services.screening.domain.ladder import CaseState, LadderRefused, Step
from services.screening.domain.lines import MissingMonitoringLine, MonitoringLines

__all__ = ["FIRST_STEP", "MonitoredSubject", "OpenCase", "take_clue", "Eligibility", "Findings", "Reason", "ReasonCode",
           "Recommendation", "recommend", "CaseState",
           "LadderRefused", "Step", "MissingMonitoringLine", "MonitoringLines"]
