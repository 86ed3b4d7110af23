"""The monthly bulletin (监测帮扶月报, seed 004) of a region as a printable HTML page: the month's
figures, the trend of subjects and exits over the twelve months to it, and the exit rate of each
region one level below, as inline SVG charts (no script, no network). Pure: statistics in, HTML out
(`fangpin report` fetches them from exit_review's GET /v1/statistics)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).parent / "templates"
CATEGORY_ZH = {"unstable_formerly_poor": "脱贫不稳定户", "marginal_at_risk": "边缘易致贫户", "sudden_hardship": "突发严重困难户"}
FLOW_ZH = {"identified": "新识别", "risk_eliminated": "风险消除", "rolled_back": "风险消除回退", "removed": "清退"}


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: str


def trend_bars(trend: list[dict], width: float = 640, height: float = 220) -> dict:
    """Grouped bars per month: subjects monitored and risk-eliminated at each month's end."""
    top = max([max(m["monitored"], m["risk_eliminated"]) for m in trend] + [1])
    slot = width / max(len(trend), 1)
    bars = []
    for i, month in enumerate(trend):
        for j, key in enumerate(("monitored", "risk_eliminated")):
            h = height * month[key] / top
            bars.append((key, Bar(i * slot + 4 + j * (slot - 8) / 2, height - h, (slot - 8) / 2 - 1, h,
                                  month["period"], str(month[key]))))
    return {"width": width, "height": height, "top": top, "bars": bars,
            "labels": [(i * slot + slot / 2, m["period"][5:] or m["period"]) for i, m in enumerate(trend)]}


def rate_bars(regions: list[dict], width: float = 640, row: float = 22) -> dict:
    """One horizontal bar per region: its exit rate (0 to 100 %)."""
    bars = []
    for i, region in enumerate(regions):
        rate = Decimal(region["exit_rate"]) if region["exit_rate"] is not None else None
        w = float(rate or 0) * (width - 180)
        bars.append(Bar(140, i * row + 2, w, row - 6, region["region"],
                        "—" if rate is None else f"{rate * 100:.1f}%"))
    return {"width": width, "height": max(len(regions), 1) * row, "bars": bars}


def percent(value) -> str:
    return "—" if value is None else f"{Decimal(value) * 100:.1f}%"


def render_bulletin(current: dict, trend: list[dict], generated_at: datetime | None = None) -> str:
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    environment.filters["percent"] = percent
    return environment.get_template("bulletin.html.j2").render(
        s=current, trend=trend_bars(trend), rates=rate_bars(current["by_region"]), categories=CATEGORY_ZH,
        flows=FLOW_ZH, generated_at=(generated_at or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC"))
