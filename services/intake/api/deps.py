"""Who may call intake's routes: the principal aliases its routes take (`principal: Registrar`)."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from runtime.auth import BEARER, Department, Principal, bearer_token, decode_token, require
from runtime.problems import Problem

REGISTRARS = ("village_cadre", "grid_worker", "work_team", "township_officer", "county_officer")

# Who registers households and imports them (staff, or a system importing for them).
Registrar = Annotated[Principal, Depends(require(*REGISTRARS, kinds=("staff", "system")))]
# Who records grid-worker visits (网格员走访).
Visitor = Annotated[Principal, Depends(require("grid_worker", "village_cadre", "work_team", "township_officer"))]
# Who seals personal data again under the current key.
Administrator = Annotated[Principal, Depends(require("administrator", kinds=("staff", "system")))]
# Who reads the warnings reported back to the departments.
WarningReader = Annotated[Principal, Depends(require("department_system", "department_liaison", "county_officer",
                                                     kinds=("system", "staff")))]

# Who posts a department's warnings: its system or liaison, for its own department.
WarningSender = Department


async def household_principal(request: Request, token: str | None = Query(
        None, description="the token of the household's QR link (or send it as a Bearer token)"),
        _declared=Depends(BEARER)) -> Principal:
    raw = bearer_token(request) or token
    if raw is None:
        raise Problem(401, "Unauthorized", "open the link of the household's QR code, or send its token",
                      code="token_missing")
    principal = decode_token(request.app.state.context.settings, raw)
    if principal.kind != "household":
        raise Problem(403, "Forbidden", "declarations are made by the household itself, with the token of its QR code",
                      code="household_token_required")
    return principal


# The household itself, with the token of its QR code (一户一码), as a Bearer token or ?token=.
HouseholdToken = Annotated[Principal, Depends(household_principal)]
