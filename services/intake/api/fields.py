"""Field types shared by intake's request bodies."""
from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from services.intake import domain


def _valid_id_number(value: str) -> str:
    try:
        domain.parse_id_number(value)
    except domain.InvalidIdNumber as exc:
        raise ValueError(str(exc)) from None
    return value.strip().upper()


IdNumber = Annotated[str, AfterValidator(_valid_id_number),
                     Field(description="18 characters: GB 11643 check digit, a real birth date")]
