"""Field types shared by intake's request bodies."""
from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from contracts.fields import FieldProblem, birth_date_problem, current_time, refusal
from services.intake import domain


def _valid_id_number(value: str) -> str:
    try:
        born = domain.parse_id_number(value)
    except domain.InvalidIdNumber as exc:
        raise refusal(FieldProblem(exc.code, str(exc))) from None
    if problem := birth_date_problem(born, current_time()):  # it becomes the member's birth_date
        raise refusal(FieldProblem(problem.code, f"its birth date {born.isoformat()} {problem.message}"))
    return value.strip().upper()


IdNumber = Annotated[str, AfterValidator(_valid_id_number),
                     Field(description="18 characters: GB 11643 check digit, a birth date from 1900-01-01 to today")]
