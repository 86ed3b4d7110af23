"""Demo data for `fangpin up --demo`: a small county with villages, staff, households and warnings,
loaded through the public HTTP API like any other client would."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, timedelta, timezone

import httpx

from runtime.auth import issue_token
from runtime.clock import clock_from_settings
from runtime.settings import Settings

COUNTY = "410721"
VILLAGES = ["410721001001", "410721001002", "410721002001", "410721002002"]
HOUSEHOLDS_PER_VILLAGE = 10
CHINA = timezone(timedelta(hours=8))
WARNED = [(0, "civil_affairs", "new_dibao", None), (3, "medical_insurance", "high_medical_expense", "36000.00"),
          (11, "emergency", "disaster_loss", "8000.00"), (25, "human_resources", "unemployment", None),
          (32, "disabled_persons_federation", "disability_registered", None)]


def _id_number(index: int, birth: date) -> str:
    from services.intake.domain import id_check_digit

    first17 = f"{COUNTY}{birth:%Y%m%d}{index % 1000:03d}"
    return first17 + id_check_digit(first17)


@dataclass(frozen=True)
class DemoToken:
    """A token of one of the demo's staff (or its department system), printed ready to paste."""

    variable: str  # the shell variable the printed line sets
    who: str
    token: str


def load_demo(ports: dict[str, int], settings: Settings, say=print) -> list[DemoToken]:
    """Load the demo and say how to use it; returns the tokens it printed."""
    def token(role: str, region: str, sub: str, kind: str = "staff", department: str | None = None) -> str:
        return issue_token(settings, sub=sub, role=role, region=region, kind=kind, department=department)

    def headers(role: str, region: str, sub: str, kind: str = "staff", department: str | None = None) -> dict:
        return {"Authorization": f"Bearer {token(role, region, sub, kind, department)}"}

    county = headers("county_officer", COUNTY, "demo-county")
    url = {s: f"http://127.0.0.1:{p}" for s, p in ports.items()}
    with httpx.Client(timeout=30) as http:
        def post(service: str, path: str, body: dict, auth: dict) -> dict:
            r = http.post(url[service] + path, json=body, headers=auth)
            if r.status_code >= 400:
                raise RuntimeError(f"demo: {path} answered {r.status_code}: {r.text}")
            return r.json()

        staff = [("demo-county", "县乡村振兴局 王科长", "county_officer", COUNTY)]
        for t, township in enumerate(sorted({v[:9] for v in VILLAGES}), start=1):
            staff.append((f"demo-township-{t}", f"乡镇干部 {t}", "township_officer", township))
        for v, village in enumerate(VILLAGES, start=1):
            staff.append((f"demo-cadre-{v}", f"村两委 {v}", "village_cadre", village))
            staff.append((f"demo-grid-{v}", f"网格员 {v}", "grid_worker", village))
        for staff_id, name, role, region in staff:
            post("notifier", "/v1/staff", {"staff_id": staff_id, "name": name, "role": role, "region_code": region}, county)
        say(f"demo: {len(staff)} staff registered")

        heads = []
        for v, village in enumerate(VILLAGES):
            for h in range(HOUSEHOLDS_PER_VILLAGE):
                index = v * HOUSEHOLDS_PER_VILLAGE + h
                head = _id_number(index, date(1960, 1, 1) + timedelta(days=97 * index))
                child = _id_number(index + 500, date(2008, 1, 1) + timedelta(days=31 * index))
                post("intake", "/v1/households", {
                    "household_id": f"DEMO-{index + 1:04d}", "region_code": village, "group": str(h % 4 + 1),
                    "poverty_status": "out_of_poverty" if h % 3 == 0 else "ordinary",
                    "grid_worker_id": f"demo-grid-{v + 1}",
                    "members": [
                        {"id_number": head, "name": f"户主{index + 1}", "relation": "head", "labor_capacity": "full"},
                        {"id_number": child, "name": f"子女{index + 1}", "relation": "child", "labor_capacity": "none",
                         "in_school": True},
                    ],
                }, county)
                heads.append(head)
        say(f"demo: {len(heads)} households registered in {len(VILLAGES)} villages")

        # Observed the day before the system's today, which on a simulation clock is the simulated one.
        observed_at = (clock_from_settings(settings).now() - timedelta(days=1)).astimezone(CHINA).isoformat()
        for n, (index, department, indicator, amount) in enumerate(WARNED, start=1):
            body = {"department": department, "source_record_id": f"DEMO-{department}-{n}", "id_number": heads[index],
                    "indicator": indicator, "observed_at": observed_at, "detail": "demo warning"}
            if amount:
                body["amount"] = amount
            post("intake", "/v1/warnings", body, headers("department_system", "", f"demo-{department}", "system", department))
        say(f"demo: {len(WARNED)} department warnings posted")

        cadre = headers("village_cadre", VILLAGES[0], "demo-cadre-1")
        for _ in range(60):
            items = http.get(url["notifier"] + "/v1/inbox", headers=cadre).json()["items"]
            if items:
                break
            time.sleep(0.5)
    township = VILLAGES[0][:9]
    tokens = [
        DemoToken("CADRE", f"village cadre demo-cadre-1 of {VILLAGES[0]}: {len(items)} task(s) in the inbox",
                  cadre["Authorization"][7:]),
        DemoToken("TOWNSHIP", f"township officer demo-township-1 of {township}",
                  token("township_officer", township, "demo-township-1")),
        DemoToken("COUNTY", f"county officer demo-county of {COUNTY}", token("county_officer", COUNTY, "demo-county")),
        DemoToken("CIVIL_AFFAIRS", "the civil affairs department's system (posts its warnings)",
                  token("department_system", "", "demo-civil_affairs", "system", "civil_affairs")),
    ]
    say("demo: tokens of its staff (30 days), ready to paste into a shell:")
    for demo_token in tokens:
        say(f"      export {demo_token.variable}={demo_token.token}  # {demo_token.who}")
    say(f"      curl -H \"Authorization: Bearer $CADRE\" {url['notifier']}/v1/inbox")
    say(f"      curl -H \"Authorization: Bearer $TOWNSHIP\" '{url['intake']}/v1/households?limit=5'")
    return tokens
