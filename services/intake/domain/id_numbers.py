"""Citizen ID numbers (居民身份证号码, GB 11643): shape, check digit, birth date, masking."""
from __future__ import annotations

import re
from datetime import date
from operator import mul

from contracts.codes import Refusal

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_SHAPE = re.compile(r"[0-9]{17}[0-9X]")  # ASCII digits only (\d would also take other scripts' digits)


class InvalidIdNumber(Refusal):
    """An ID number breaks one of GB 11643's rules; `code` names which (contracts/codes.py)."""


_ASCII_ZERO_WEIGHED = ord("0") * sum(_ID_WEIGHTS)


def id_check_digit(first17: str) -> str:
    """GB 11643 check character for the first 17 digits of a citizen ID number (weighed as their
    character codes, less those of zeros: no int() per digit)."""
    return _ID_CHECK[(sum(map(mul, first17.encode(), _ID_WEIGHTS)) - _ASCII_ZERO_WEIGHED) % 11]


def parse_id_number(id_number: str) -> date:
    """Validate an 18-character ID number and return the birth date it carries."""
    value = id_number.strip().upper()
    if not _ID_SHAPE.fullmatch(value):
        raise InvalidIdNumber("id_number_malformed", "must be 17 digits followed by a digit or X")
    if id_check_digit(value[:17]) != value[17]:
        raise InvalidIdNumber("id_number_check_digit_wrong", "check digit does not match (GB 11643)")
    try:
        return date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError as exc:
        raise InvalidIdNumber("id_number_birth_date_invalid", f"birth date {value[6:14]} is not a date") from exc


def mask_id_number(id_number: str) -> str:
    """Shown to everyone as 410721********1234."""
    return f"{id_number[:6]}{'*' * 8}{id_number[-4:]}"
