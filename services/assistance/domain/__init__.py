"""Pure decisions of assistance: the measures catalogue, the plan and its rules, the choice of a helper."""
from services.assistance.domain.catalogue import Catalogue, CatalogueError, MeasureKind
from services.assistance.domain.helpers import Choice, Helper, choose_helper
from services.assistance.domain.plans import Gap, Measure, PlanRules, PlanState, check_plan, plan_from_history, plan_gaps

__all__ = ["Catalogue", "CatalogueError", "MeasureKind", "Choice", "Helper", "choose_helper", "Gap", "Measure",
           "PlanRules", "PlanState", "check_plan", "plan_from_history", "plan_gaps"]
