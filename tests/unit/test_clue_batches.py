"""A batch upload's clues travel in a few events, each in the topic partition of its households."""
from datetime import datetime, timezone

from hypothesis import given, strategies as st

from contracts.intake import RiskClueRaised, RiskCluesRaised
from contracts.vocabulary import ClueChannel, RiskType
from runtime.kafka import partition_of
from services.intake.api.clues import clue_on_its_own, clues_together, raise_clue
from services.intake.store import HouseholdRef

NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)


def clue(n: int, household_id: str):
    household = HouseholdRef(household_id, "410721001001", "ordinary")
    return raise_clue(f"c{n}", household, ClueChannel.DEPARTMENT_WARNING, NOW, [RiskType.INCOME_DROP],
                      department="civil_affairs", source_record_id=f"MCA-{n}", indicator="new_dibao")[0]


@given(st.lists(st.integers(min_value=0, max_value=200), max_size=60), st.integers(min_value=1, max_value=12))
def test_every_clue_travels_once_in_its_households_partition(households, partitions):
    clues = [clue(n, f"H{h}") for n, h in enumerate(households)]
    streams = clues_together(clues, partitions)
    carried = []
    for head, [new] in streams:
        assert isinstance(new.payload, RiskCluesRaised) and new.household_id is None
        key_partition = partition_of(new.partition_key.encode(), partitions)
        assert {partition_of(c.household_id.encode(), partitions) for c in new.payload.clues} == {key_partition}
        assert head.position == 0
        carried.extend(new.payload.clues)
    assert sorted(c.clue_id for c in carried) == sorted(c.clue_id for c in clues)  # each once, none lost
    assert len(streams) <= partitions and len({head.stream_id for head, _ in streams}) == len(streams)


def test_a_households_clues_keep_their_order_within_the_batch():
    clues = [clue(n, h) for n, h in enumerate(["H1", "H2", "H1", "H3", "H1"])]
    [mine] = [new.payload.clues for _, [new] in clues_together(clues, 3) if any(c.household_id == "H1" for c in new.payload.clues)]
    assert [c.clue_id for c in mine if c.household_id == "H1"] == ["c0", "c2", "c4"]


def test_a_clue_on_its_own_is_one_event_about_its_household():
    one = clue(1, "H7")
    head, [new] = clue_on_its_own(one)
    assert head.stream_id == "clue-c1" and new.household_id == "H7" and new.region_code == "410721001001"
    assert isinstance(new.payload, RiskClueRaised) and new.payload.clue_id == "c1"
    assert new.payload.model_dump() == one.model_dump(exclude={"region_code"})
