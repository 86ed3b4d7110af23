"""Problem details for input the database cannot store (pure)."""
from runtime.problems import nul_field


def test_nul_field_names_the_first_string_holding_nul_however_deep():
    row = {"household_id": "B1", "members": [{"name": "甲"}, {"name": "乙\x00", "notes": ["\x00"]}]}
    assert nul_field(row) == "members[1].name"
    assert nul_field({"detail": "fine", "amount": 3, "tags": ["a"], "none": None}) is None
    assert nul_field("\x00") == "(the value)"
