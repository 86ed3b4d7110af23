"""The kinds of refusal of screening's rules. Each names its rule by a registered code
(contracts/codes.py) and carries what a caller needs to act on it (the step a case expects, the
roles that may take it); app.py maps each kind to its HTTP status."""
from contracts.codes import Refusal


class NotAllowed(Refusal):
    """The actor's role may not do this; `allowed_roles` names those who may."""


class OutOfOrder(Refusal):
    """Not now: the case is at another step or closed, or the subject is not in a state that takes this."""


class NotFound(Refusal):
    """The command names something the case does not hold (an objection that is not open)."""


class Invalid(Refusal):
    """The command itself is incomplete or contradicts the facts (an approval without a category)."""
