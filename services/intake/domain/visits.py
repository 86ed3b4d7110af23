"""Grid-worker visits (网格员走访): who may record one."""
from __future__ import annotations

from contracts.codes import Refusal


class VisitRefused(Refusal):
    """A grid worker records their own visits, to the households assigned to them."""


def check_visitor(role: str, token_holder: str, worker_id: str) -> None:
    if role == "grid_worker" and worker_id != token_holder:
        raise VisitRefused("worker_id_not_token_holder",
                           f"a grid worker records their own visits (token is {token_holder})")


def check_visited_household(role: str, token_holder: str, household_id: str, assigned_worker: str | None) -> None:
    if role == "grid_worker" and assigned_worker != token_holder:
        raise VisitRefused("household_not_assigned_to_grid_worker",
                           f"household {household_id} is not one of grid worker {token_holder}'s households; "
                           "a grid worker visits their own households only")
