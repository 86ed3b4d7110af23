"""The measures catalogue (帮扶措施目录): what each kind of measure is, developmental (开发式) or
safety net (兜底), the risk types it answers and the department responsible. Deployment data
(data/measures.csv, replaceable): read here, loaded by reference.py."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from contracts.vocabulary import RiskType

NATURES = ("developmental", "safety_net")


@dataclass(frozen=True)
class MeasureKind:
    kind: str
    name_zh: str
    nature: str  # developmental | safety_net
    answers: frozenset[RiskType]
    department: str


class CatalogueError(ValueError):
    """The catalogue file is not one: the message names the line and what is wrong."""


@dataclass(frozen=True)
class Catalogue:
    kinds: dict[str, MeasureKind]

    def get(self, kind: str) -> MeasureKind | None:
        return self.kinds.get(kind)

    @classmethod
    def from_csv(cls, path: Path) -> "Catalogue":
        kinds: dict[str, MeasureKind] = {}
        with path.open(newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            missing = {"kind", "name_zh", "nature", "answers", "department"} - set(reader.fieldnames or ())
            if missing:
                raise CatalogueError(f"{path}: no column {', '.join(sorted(missing))}")
            for line, row in enumerate(reader, start=2):
                kind = (row["kind"] or "").strip()
                if not kind:
                    raise CatalogueError(f"{path}, line {line}: no kind")
                if kind in kinds:
                    raise CatalogueError(f"{path}, line {line}: {kind} again")
                if row["nature"] not in NATURES:
                    raise CatalogueError(f"{path}, line {line}: nature {row['nature']!r} is not one of {', '.join(NATURES)}")
                try:
                    answers = frozenset(RiskType(r.strip()) for r in row["answers"].split(";") if r.strip())
                except ValueError as exc:
                    raise CatalogueError(f"{path}, line {line}: {exc}") from None
                if not answers:
                    raise CatalogueError(f"{path}, line {line}: {kind} answers no risk type")
                kinds[kind] = MeasureKind(kind, row["name_zh"].strip(), row["nature"], answers, row["department"].strip())
        if not kinds:
            raise CatalogueError(f"{path}: no measure")
        return cls(kinds)
