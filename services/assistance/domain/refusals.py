"""The kinds of refusal of assistance's rules. Each names its rule by a registered code
(contracts/codes.py); app.py maps each kind to its HTTP status."""
from contracts.codes import Refusal


class NotFound(Refusal):
    """No such plan or measure."""


class NotAllowed(Refusal):
    """Not this actor: another role, or a helper acting on a household they do not help."""


class Invalid(Refusal):
    """The command contradicts itself or the catalogue; `errors` names the field."""

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(code, message, errors=[{"field": field, "message": message}])


class OutOfOrder(Refusal):
    """Not now: the plan is closed, the measure has ended, the helper is the same."""
