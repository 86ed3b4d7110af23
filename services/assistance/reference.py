"""assistance's deployment data, loaded from data/*.csv here and nowhere else: the measures catalogue."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from services.assistance.domain import Catalogue

DATA = Path(__file__).parent / "data"


@lru_cache(maxsize=4)
def measures_catalogue(path: str | None) -> Catalogue:
    """The catalogue FANGPIN_MEASURES_CATALOGUE names; None: the one shipped with assistance."""
    return Catalogue.from_csv(Path(path) if path else DATA / "measures.csv")
