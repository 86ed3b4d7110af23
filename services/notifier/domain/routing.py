"""Routing as data (the table in services/notifier/data/routing.csv, or the file FANGPIN_NOTIFIER_ROUTING
names): which event tells which role at which level of the household's region, what it says, by when.

A row: `event_types` (one or more, `|`-separated) · `when` (`field=value` of the payload, or empty) ·
`role` · `level` (village, township, county; `helper`: the household's helper; `department`: the
subscriptions of the department the event names) · `kind` · `task` (yes: acknowledged, reminded and
escalated; no: a message) · `due_working_days` (empty: the payload's `due_date`, else none) · `urgent` ·
`closes` (yes: the event completes the open tasks of its reference) · `reference` · `text_zh` ·
`text_en` (templates over the payload's fields; a row without text only closes).
"""
from __future__ import annotations

import csv
import io
import string
from dataclasses import dataclass
from pathlib import Path

from contracts.codes import CODES
from contracts.vocabulary import StaffRole

LEVEL_DIGITS = {"province": 2, "city": 4, "county": 6, "township": 9, "village": 12}
PERSON_LEVELS = ("helper", "department")
# Who answers one level up (逐级): the escalation of a task goes to this role at that level.
ROLE_AT_LEVEL = {"township": StaffRole.TOWNSHIP_OFFICER.value, "county": StaffRole.COUNTY_OFFICER.value}
ESCALATION_LEVELS = ("village", "township", "county")
# Names a template may use besides the payload's fields: the envelope's, and a step's Chinese term.
ENVELOPE_FIELDS = {"household_id", "region_code", "step_zh"}
COLUMNS = ("event_types", "when", "role", "level", "kind", "task", "due_working_days", "urgent", "closes",
           "reference", "text_zh", "text_en")


class RoutingError(ValueError):
    """The routing table is wrong: the message names the line and the column."""


@dataclass(frozen=True)
class Rule:
    line: int
    event_types: tuple[str, ...]
    when: tuple[str, str] | None
    role: str  # a StaffRole, or "department_system" for a department's subscriptions
    level: str
    kind: str
    task: bool
    due_working_days: int | None
    urgent: bool
    closes: bool
    reference: str
    text_zh: str
    text_en: str

    @property
    def name(self) -> str:
        return f"{self.line}:{self.kind}"

    def matches(self, event_type: str, payload: dict) -> bool:
        if event_type not in self.event_types:
            return False
        return self.when is None or str(payload.get(self.when[0])) == self.when[1]


@dataclass(frozen=True)
class Route:
    """What one rule makes of one event: the texts filled in, the region the level is counted from."""

    rule: Rule
    reference: str
    subject_zh: str
    subject_en: str
    region_code: str

    def region_at(self, level: str) -> str:
        return self.region_code[:LEVEL_DIGITS[level]]


class _Fields(dict):
    """Payload fields for a template; a field the event lacks reads as empty, never an error at run time
    (the table is checked against the event models when it is loaded)."""

    def __missing__(self, key: str) -> str:
        return ""


def _fields(payload: dict) -> _Fields:
    fields = _Fields({k: ", ".join(map(str, v)) if isinstance(v, list) else v for k, v in payload.items()})
    step = payload.get("step")
    if isinstance(step, str) and step in CODES:
        fields["step_zh"] = CODES[step].text_zh or step
    return fields


@dataclass(frozen=True)
class RoutingTable:
    rules: tuple[Rule, ...]

    def routes(self, event_type: str, payload: dict, region_code: str | None) -> list[Route]:
        """The routes of one event (none without a region: nobody's level can be counted)."""
        if not region_code:
            return []
        fields = _fields(payload)
        return [Route(rule, rule.reference.format_map(fields), rule.text_zh.format_map(fields),
                      rule.text_en.format_map(fields), region_code)
                for rule in self.rules if rule.text_zh and rule.matches(event_type, payload)]

    def closes(self, event_type: str, payload: dict) -> list[str]:
        """The references whose open tasks this event completes."""
        fields = _fields(payload)
        return sorted({rule.reference.format_map(fields) for rule in self.rules
                       if rule.closes and rule.matches(event_type, payload)})

    @property
    def department_event_types(self) -> set[str]:
        """The event types that go to the subscriptions of the department they name."""
        return {t for rule in self.rules if rule.level == "department" for t in rule.event_types}

    @property
    def event_types(self) -> set[str]:
        return {event_type for rule in self.rules for event_type in rule.event_types}

    @classmethod
    def from_csv(cls, path: Path) -> "RoutingTable":
        return cls.parse(path.read_text(encoding="utf-8"), str(path))

    @classmethod
    def parse(cls, text: str, source: str = "routing table") -> "RoutingTable":
        import contracts.catalog  # noqa: F401  every event model, to check the templates against
        from contracts.base import payload_class

        reader = csv.DictReader(io.StringIO(text))
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise RoutingError(f"{source}: the columns must be {','.join(COLUMNS)}")
        rules = []
        for row in reader:
            line = reader.line_num

            def fail(column: str, why: str):
                raise RoutingError(f"{source} line {line}, {column}: {why}")

            event_types = tuple(t.strip() for t in row["event_types"].split("|") if t.strip())
            models = []
            for event_type in event_types:
                model = payload_class(event_type)
                if model is None:
                    fail("event_types", f"no event type {event_type!r}")
                models.append(model)
            if not event_types:
                fail("event_types", "empty")
            when = None
            if row["when"].strip():
                field, _, value = row["when"].partition("=")
                if not value:
                    fail("when", "write field=value")
                when = (field.strip(), value.strip())
            level = row["level"].strip()
            if level not in LEVEL_DIGITS and level not in PERSON_LEVELS:
                fail("level", f"one of {', '.join([*LEVEL_DIGITS, *PERSON_LEVELS])}")
            role = row["role"].strip()
            if role not in {r.value for r in StaffRole} | {"department_system"}:
                fail("role", f"no role {role!r}")
            if (level == "department") != (role == "department_system"):
                fail("role", "department_system is the role of level department, and only of it")
            flags = {}
            for column in ("task", "urgent", "closes"):
                if row[column].strip() not in ("yes", "no"):
                    fail(column, "yes or no")
                flags[column] = row[column].strip() == "yes"
            due = row["due_working_days"].strip()
            if due and not due.isdigit():
                fail("due_working_days", "a whole number of working days, or empty")
            for column in ("reference", "text_zh", "text_en"):
                names = {name for _, name, _, _ in string.Formatter().parse(row[column]) if name}
                for model in models:
                    unknown = names - set(model.model_fields) - ENVELOPE_FIELDS
                    if unknown:
                        fail(column, f"{model.event_type} has no field {', '.join(sorted(unknown))}")
            rules.append(Rule(line, event_types, when, role, level, row["kind"].strip(), flags["task"],
                              int(due) if due else None, flags["urgent"], flags["closes"],
                              row["reference"].strip(), row["text_zh"].strip(), row["text_en"].strip()))
        return cls(tuple(rules))
