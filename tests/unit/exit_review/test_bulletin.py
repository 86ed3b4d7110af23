"""The monthly bulletin renders (issue 17): a page with its tables and its two charts, the figures in
them, escaped text, and nothing fetched from elsewhere. Pure."""
from html.parser import HTMLParser

from services.exit_review.bulletin import render_bulletin


def month(period: str, monitored: int, eliminated: int, **more) -> dict:
    return {"region": "410721", "period": period, "start": f"{period}-01", "end": f"{period}-28",
            "monitored": monitored, "risk_eliminated": eliminated, "protected": 1,
            "monitored_by_category": {"unstable_formerly_poor": 0, "marginal_at_risk": monitored, "sudden_hardship": 0},
            "exit_rate": None if not monitored + eliminated else str(round(eliminated / (monitored + eliminated), 4)),
            "flows": {"identified": 2, "risk_eliminated": 1, "rolled_back": 0, "removed": 0},
            "measures_per_household": "1.50", "developmental_share": "0.5000", "policy_coverage": "1.0000",
            "households_with_gaps": 0, "overdue_steps": {"identification": {"county_decision": 2}, "exit": {}},
            "by_region": [{"region": "410721001", "monitored": 3, "risk_eliminated": 1, "exit_rate": "0.2500"},
                          {"region": "410721<b>", "monitored": 0, "risk_eliminated": 0, "exit_rate": None}], **more}


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.stack, self.rects, self.cells, self.sources = {}, [], {}, {}, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids[attrs["id"]] = tag
        self.stack.append(attrs.get("id") or (self.stack[-1] if self.stack else None))
        if tag == "rect":
            self.rects[self.stack[-2]] = self.rects.get(self.stack[-2], 0) + 1
        self.sources += [attrs[a] for a in ("src", "href") if a in attrs]

    def handle_endtag(self, tag):
        if self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1] and data.strip():
            self.cells.setdefault(self.stack[-1], []).append(data.strip())


def test_the_bulletin_has_its_tables_and_charts():
    trend = [month(f"2026-{m:02d}", 3 + m, m) for m in range(1, 13)]
    page = Page()
    html = render_bulletin(trend[-1], trend)
    page.feed(html)
    assert {"subjects", "flows", "plans", "regions", "overdue"} <= {i for i, tag in page.ids.items() if tag == "table"}
    assert page.ids["trend-chart"] == page.ids["rate-chart"] == "svg"
    assert page.rects == {"trend-chart": 24, "rate-chart": 2}  # two bars a month; a bar a region
    assert "15" in page.cells["subjects"] and "44.4%" in page.cells["subjects"]  # 12 of 27
    assert "25.0%" in page.cells["regions"] and "county_decision" in page.cells["overdue"]
    assert "410721<b>" in page.cells["regions"] and "<b>" not in html.replace("&lt;b&gt;", ""), "text is escaped"
    assert page.sources == [], "nothing is fetched: the page prints offline"
