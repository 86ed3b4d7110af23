"""A batch upload's clues travel in a few events, each in the topic partition of its households."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, strategies as st

from contracts.base import DumpedPayload
from contracts.intake import BatchedClue, RiskClueRaised, RiskCluesRaised
from contracts.vocabulary import ClueChannel, RiskType
from runtime.kafka import partition_of
from services.intake.commands import clue_on_its_own, clues_together, raise_clue
from services.intake.store import HouseholdRef

NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)


def clue(n: int, household_id: str, **facts):
    household = HouseholdRef(household_id, "410721001001", "ordinary")
    return raise_clue(f"c{n}", household, ClueChannel.DEPARTMENT_WARNING, NOW, [RiskType.INCOME_DROP],
                      department="civil_affairs", source_record_id=f"MCA-{n}", indicator="new_dibao", **facts)


@given(st.lists(st.integers(min_value=0, max_value=200), max_size=60), st.integers(min_value=1, max_value=12))
def test_every_clue_travels_once_in_its_households_partition(households, partitions):
    clues = [clue(n, f"H{h}") for n, h in enumerate(households)]
    streams = clues_together(clues, partitions)
    carried = []
    for head, [new] in streams:
        assert new.household_id is None and head.position == 0
        payload = RiskCluesRaised.model_validate(new.payload.model_dump(mode="json"))  # as screening decodes it
        key_partition = partition_of(new.partition_key.encode(), partitions)
        assert {partition_of(c.household_id.encode(), partitions) for c in payload.clues} == {key_partition}
        carried.extend(c.clue_id for c in payload.clues)
    assert sorted(carried) == sorted(c["clue_id"] for c in clues)  # each once, none lost
    assert len(streams) <= partitions and len({head.stream_id for head, _ in streams}) == len(streams)


def test_a_households_clues_keep_their_order_within_the_batch():
    clues = [clue(n, h) for n, h in enumerate(["H1", "H2", "H1", "H3", "H1"])]
    [mine] = [new.payload.data["clues"] for _, [new] in clues_together(clues, 3)
              if any(c["household_id"] == "H1" for c in new.payload.data["clues"])]
    assert [c["clue_id"] for c in mine if c["household_id"] == "H1"] == ["c0", "c2", "c4"]


@given(st.one_of(st.none(), st.decimals(min_value=0, max_value=10**9, places=2)),
       st.one_of(st.none(), st.integers(-12, 14).map(lambda h: datetime(2026, 11, 1, 8, tzinfo=timezone(timedelta(hours=h))))),
       st.one_of(st.none(), st.text(max_size=20)))
def test_a_clue_built_as_json_is_what_the_contract_would_dump(amount, observed_at, detail):
    """raise_clue skips the models for speed; its dict must be what BatchedClue itself makes."""
    built = clue(1, "H1", amount=amount, observed_at=observed_at, detail=detail)
    model = BatchedClue.model_validate(built)
    assert model.amount == amount and model.observed_at == observed_at and model.detail == detail
    again = model.model_dump(mode="json")
    assert {k: v for k, v in again.items() if k != "observed_at"} == {k: v for k, v in built.items() if k != "observed_at"}
    assert (again["observed_at"] is None) == (built["observed_at"] is None)


def test_a_clue_on_its_own_is_one_event_about_its_household():
    one = clue(1, "H7")
    head, [new] = clue_on_its_own(one)
    assert head.stream_id == "clue-c1" and new.household_id == "H7" and new.region_code == "410721001001"
    assert isinstance(new.payload, RiskClueRaised) and new.payload.clue_id == "c1"
    assert new.payload.model_dump(mode="json") == {k: v for k, v in one.items() if k != "region_code"}


def test_a_dumped_payload_answers_for_its_class():
    payload = DumpedPayload(RiskCluesRaised, {"clues": []})
    assert (payload.event_type, payload.schema_version) == ("RiskCluesRaised", RiskCluesRaised.schema_version)
