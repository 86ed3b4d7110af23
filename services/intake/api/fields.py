"""Field types shared by intake's request bodies."""
from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from contracts.fields import birth_date_problem, wall_clock
from services.intake import domain


def _valid_id_number(value: str) -> str:
    try:
        born = domain.parse_id_number(value)
    except domain.InvalidIdNumber as exc:
        raise ValueError(str(exc)) from None
    if problem := birth_date_problem(born, wall_clock()):  # it becomes the member's birth_date
        raise ValueError(f"its birth date {born.isoformat()} {problem}")
    return value.strip().upper()


IdNumber = Annotated[str, AfterValidator(_valid_id_number),
                     Field(description="18 characters: GB 11643 check digit, a birth date from 1900-01-01 to today")]
