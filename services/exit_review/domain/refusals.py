"""The kinds of refusal of exit_review's rules. Each names its rule by a registered code
(contracts/codes.py) and carries what a caller needs to act on it (the step a case expects, the
roles that may take it, the field at fault); app.py maps each kind to its HTTP status."""
from contracts.codes import Refusal


class NotFound(Refusal):
    """No such exit case or open objection."""


class NotAllowed(Refusal):
    """Not this actor: another role takes the step, or another person is that party."""


class OutOfOrder(Refusal):
    """Not now: the case is at another step or closed, the household is in another exit case."""


class Invalid(Refusal):
    """The command contradicts the facts; `errors` names the field."""

    def __init__(self, code: str, field: str, message: str, **details) -> None:
        super().__init__(code, message, errors=[{"field": field, "message": message}], **details)
