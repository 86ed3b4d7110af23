"""Problem details for input the database cannot store, and validation messages said plainly (pure)."""
from pydantic import BaseModel, ValidationError, field_validator

from runtime.problems import nul_field, plain_message
from runtime.ndjson import first_error, identifiers_of


def test_nul_field_names_the_first_string_holding_nul_however_deep():
    row = {"household_id": "B1", "members": [{"name": "甲"}, {"name": "乙\x00", "notes": ["\x00"]}]}
    assert nul_field(row) == "members[1].name"
    assert nul_field({"detail": "fine", "amount": 3, "tags": ["a"], "none": None}) is None
    assert nul_field("\x00") == "(the value)"


class Checked(BaseModel):
    household_id: str
    size: int

    @field_validator("size")
    @classmethod
    def _small(cls, size: int) -> int:
        if size > 30:
            raise ValueError("a household has at most 30 members")
        if size < 1:  # raised, not asserted: pytest rewrites the asserts of test modules
            raise AssertionError("a household has a member")
        return size


def test_validation_messages_are_said_without_pydantics_prefixes():
    for size, code, said in ((31, "value_error", "a household has at most 30 members"),
                             (0, "assertion_error", "a household has a member")):
        try:
            Checked(household_id="H1", size=size)
        except ValidationError as exc:
            [error] = exc.errors()
            assert plain_message(error) == said
            assert first_error(exc) == {"field": "size", "code": code, "reason": said}
    assert plain_message({"msg": "Field required"}) == "Field required"


def test_the_identifiers_of_a_line_are_kept_as_far_as_it_gives_them():
    names = ("department", "source_record_id", "household_id")
    assert identifiers_of(b'{"department": "civil_affairs", "source_record_id": 17, "household_id": null}', names) == {
        "department": "civil_affairs", "source_record_id": "17"}
    assert identifiers_of(b'{"household_id": true, "department": ["x"]}', names) == {}
    assert identifiers_of(b'{"department": "civil_aff', names) == {}
    assert identifiers_of(b'["civil_affairs"]', names) == {}
