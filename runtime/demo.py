"""Demo data for `fangpin up --demo`: a small county with villages, staff, households and warnings,
loaded through the public HTTP API like any other client would."""
from __future__ import annotations

import time
from datetime import date, timedelta

import httpx

from runtime.auth import issue_token
from runtime.settings import Settings

COUNTY = "410721"
VILLAGES = ["410721001001", "410721001002", "410721002001", "410721002002"]
HOUSEHOLDS_PER_VILLAGE = 10
WARNED = [(0, "civil_affairs", "new_dibao", None), (3, "medical_insurance", "high_medical_expense", "36000.00"),
          (11, "emergency", "disaster_loss", "8000.00"), (25, "human_resources", "unemployment", None),
          (32, "disabled_persons_federation", "disability_registered", None)]


def _id_number(index: int, birth: date) -> str:
    from services.intake.domain import id_check_digit

    first17 = f"{COUNTY}{birth:%Y%m%d}{index % 1000:03d}"
    return first17 + id_check_digit(first17)


def load_demo(ports: dict[str, int], settings: Settings, say=print) -> None:
    def headers(role: str, region: str, sub: str, kind: str = "staff", department: str | None = None) -> dict:
        token = issue_token(settings, sub=sub, role=role, region=region, kind=kind, department=department)
        return {"Authorization": f"Bearer {token}"}

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

        for n, (index, department, indicator, amount) in enumerate(WARNED, start=1):
            body = {"department": department, "source_record_id": f"DEMO-{department}-{n}", "id_number": heads[index],
                    "indicator": indicator, "observed_at": "2026-11-01T09:00:00+08:00", "detail": "demo warning"}
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
        say(f"demo: village cadre demo-cadre-1 has {len(items)} task(s) in the inbox; see them with")
        say(f"      curl -H 'Authorization: Bearer {cadre['Authorization'][7:]}' {url['notifier']}/v1/inbox")
