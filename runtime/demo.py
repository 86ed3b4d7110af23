"""Demo data for `fangpin up --demo`: a small county with villages, staff, households and warnings,
loaded through the public HTTP API like any other client would."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import httpx

from runtime.auth import issue_token
from runtime.clock import SimulationClock, clock_from_settings, simulation_environment
from runtime.settings import Settings

COUNTY = "410721"
VILLAGES = ["410721001001", "410721001002", "410721002001", "410721002002"]
HOUSEHOLDS_PER_VILLAGE = 10
CHINA = timezone(timedelta(hours=8))
HISTORY = timedelta(days=60)
HISTORY_SPEED = 2 * 86400.0  # two simulated days a real second: the 60 days are told in 30 s
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


def demo_environment(anchor: datetime | None = None) -> dict[str, str]:
    """The FANGPIN_ variables of a demo system: its told history's clock, and clock-driven checks
    often enough that a simulated day is not skipped over."""
    anchor = anchor or datetime.now(timezone.utc)
    return {**simulation_environment(anchor - HISTORY, HISTORY_SPEED, anchor, catches_up=True),
            "FANGPIN_SCHEDULER_SECONDS": "0.25", "FANGPIN_PLAN_CHECK_SECONDS": "1"}


class _Api:
    """The demo's HTTP client: each answer checked, and waits for what the services do by themselves."""

    def __init__(self, http: httpx.Client, ports: dict[str, int]) -> None:
        self.http, self.url = http, {s: f"http://127.0.0.1:{p}" for s, p in ports.items()}

    def post(self, service: str, path: str, body: dict, auth: dict, **kwargs) -> dict:
        r = self.http.post(self.url[service] + path, json=body, headers=auth, **kwargs)
        if r.status_code >= 400:
            raise RuntimeError(f"demo: {path} answered {r.status_code}: {r.text}")
        return r.json()

    def wait_for(self, what: str, found, seconds: float = 60):
        deadline = time.monotonic() + seconds
        while (answer := found()) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"demo: waited {seconds:g} s for {what}; the services' logs say why")
            time.sleep(0.2)
        return answer

    def get(self, service: str, path: str, auth: dict) -> httpx.Response:
        return self.http.get(self.url[service] + path, headers=auth)


def load_demo(ports: dict[str, int], settings: Settings, say=print) -> list[DemoToken]:
    """Load the demo and say how to use it; returns the tokens it printed."""
    def token(role: str, region: str, sub: str, kind: str = "staff", department: str | None = None) -> str:
        return issue_token(settings, sub=sub, role=role, region=region, kind=kind, department=department)

    def headers(role: str, region: str, sub: str, kind: str = "staff", department: str | None = None) -> dict:
        return {"Authorization": f"Bearer {token(role, region, sub, kind, department)}"}

    county = headers("county_officer", COUNTY, "demo-county")
    clock = clock_from_settings(settings)
    with httpx.Client(timeout=30) as http:
        api = _Api(http, ports)
        post = api.post
        staff = [("demo-county", "县乡村振兴局 王科长", "county_officer", COUNTY)]
        for t, township in enumerate(sorted({v[:9] for v in VILLAGES}), start=1):
            staff.append((f"demo-township-{t}", f"乡镇干部 {t}", "township_officer", township))
        for v, village in enumerate(VILLAGES, start=1):
            staff.append((f"demo-cadre-{v}", f"村两委 {v}", "village_cadre", village))
            staff.append((f"demo-grid-{v}", f"网格员 {v}", "grid_worker", village))
            staff.append((f"demo-helper-{v}", f"帮扶责任人 {v}", "helper", village))
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
        observed_at = (clock.now() - timedelta(days=1)).astimezone(CHINA).isoformat()
        for n, (index, department, indicator, amount) in enumerate(WARNED, start=1):
            body = {"department": department, "source_record_id": f"DEMO-{department}-{n}", "id_number": heads[index],
                    "indicator": indicator, "observed_at": observed_at, "detail": "demo warning"}
            if amount:
                body["amount"] = amount
            post("intake", "/v1/warnings", body, headers("department_system", "", f"demo-{department}", "system", department))
        say(f"demo: {len(WARNED)} department warnings posted")

        cadre = headers("village_cadre", VILLAGES[0], "demo-cadre-1")
        items = api.wait_for("the village cadre's tasks", lambda: api.get("notifier", "/v1/inbox", cadre).json()["items"] or None)
        _identify_and_plan(api, clock, headers, say)
    township = VILLAGES[0][:9]
    tokens = [
        DemoToken("CADRE", f"village cadre demo-cadre-1 of {VILLAGES[0]}: {len(items)} task(s) in the inbox",
                  cadre["Authorization"][7:]),
        DemoToken("TOWNSHIP", f"township officer demo-township-1 of {township}",
                  token("township_officer", township, "demo-township-1")),
        DemoToken("COUNTY", f"county officer demo-county of {COUNTY}", token("county_officer", COUNTY, "demo-county")),
        DemoToken("CIVIL_AFFAIRS", "the civil affairs department's system (posts its warnings)",
                  token("department_system", "", "demo-civil_affairs", "system", "civil_affairs")),
        DemoToken("HELPER", f"helper demo-helper-2 of {VILLAGES[1]} (household DEMO-0012's plan)",
                  token("helper", VILLAGES[1], "demo-helper-2")),
    ]
    say("demo: tokens of its staff (30 days), ready to paste into a shell:")
    for demo_token in tokens:
        say(f"      export {demo_token.variable}={demo_token.token}  # {demo_token.who}")
    say(f"      curl -H \"Authorization: Bearer $CADRE\" {api.url['notifier']}/v1/inbox")
    say(f"demo: the staff console, on a phone or a browser: {api.url['notifier']}/console (paste a token above)")
    say(f"      curl -H \"Authorization: Bearer $TOWNSHIP\" '{api.url['intake']}/v1/households?limit=5'")
    say(f"      curl -H \"Authorization: Bearer $HELPER\" {api.url['assistance']}/v1/plans/DEMO-0012/history")
    return tokens


# The households the demo takes through identification (village 1's cases are left for the reader):
# (household index, risk types decided by the county, category).
IDENTIFIED = [(11, ["disaster", "housing"], "sudden_hardship"),
              (25, ["unstable_employment", "income_drop"], "marginal_at_risk"),
              (32, ["disability"], "unstable_formerly_poor")]
FINDINGS = {"per_capita_net_income": "5200.00", "rigid_expenditure": "0", "education_ok": True, "medical_ok": True,
            "housing_safe": True, "water_safe": True}


def _identify_and_plan(api: _Api, clock, headers, say) -> None:
    """Three warned households through the whole ladder, then their plans: one whose allowance-only
    gap is mended by an industry measure, one left with its gaps open, one answered from the start."""
    county = headers("county_officer", COUNTY, "demo-county")
    cases = {}
    for index, risks, category in IDENTIFIED:
        household_id, village = f"DEMO-{index + 1:04d}", VILLAGES[index // HOUSEHOLDS_PER_VILLAGE]

        def opened(household_id=household_id, village=village):
            found = [c for c in api.get("screening", f"/v1/cases?region={village}", county).json()["items"]
                     if c["household_id"] == household_id]
            return found[0]["case_id"] if found else None
        cases[household_id] = (api.wait_for(f"{household_id}'s verification case", opened), village, risks, category)
    notice_ends = None
    for household_id, (case_id, village, risks, category) in cases.items():
        v = VILLAGES.index(village) + 1
        api.post("screening", f"/v1/cases/{case_id}/verification", {**FINDINGS, "notes": "demo: 入户核查"},
                 headers("grid_worker", village, f"demo-grid-{v}"))
        deliberated = api.post("screening", f"/v1/cases/{case_id}/village-deliberation",
                               {"decision": "propose", "attendees": 15, "minutes": "demo: 村民代表评议"},
                               headers("village_cadre", village, f"demo-cadre-{v}"))
        notice_ends = date.fromisoformat(deliberated["notice_ends"])
    wait = _seconds_until(clock, notice_ends)
    if wait is None or wait > 120:
        say(f"demo: {len(cases)} households verified and proposed by their villages; their public notice ends on "
            f"{notice_ends} (this clock does not get there soon), then the township and the county take their steps")
        return
    say(f"demo: {len(cases)} households verified and proposed; waiting {wait:.0f} s for their five-day public notice "
        f"to end on {notice_ends} (simulated)")
    for household_id, (case_id, village, risks, category) in cases.items():
        township = village[:9]
        api.wait_for(f"the end of {household_id}'s public notice", lambda case_id=case_id: api.get(
            "screening", f"/v1/cases/{case_id}", county).json()["step"] == "township_review" or None, wait + 60)
        api.post("screening", f"/v1/cases/{case_id}/township-review", {"decision": "pass", "comment": "demo: 乡镇初审"},
                 headers("township_officer", township, f"demo-township-{sorted({v[:9] for v in VILLAGES}).index(township) + 1}"))
        api.post("screening", f"/v1/cases/{case_id}/county-decision",
                 {"decision": "approve", "category": category, "risk_types": risks, "reason": "demo: 县级审定"}, county)
    for household_id in cases:
        api.wait_for(f"{household_id}'s plan", lambda household_id=household_id: api.get(
            "assistance", f"/v1/plans/{household_id}", county).status_code == 200 or None)
    say(f"demo: {len(cases)} monitoring subjects identified by the county; their plans opened with a helper each")

    today = clock.now().date()
    last_month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")

    def helper_of(household_id: str) -> dict:
        village = next(v for hid, (_, v, _, _) in cases.items() if hid == household_id)
        return headers("helper", village, f"demo-helper-{VILLAGES.index(village) + 1}")

    def measure(household_id: str, kind: str, **fields) -> str:
        body = {"measure_type": kind, "start_date": today.isoformat(), **fields}
        return api.post("assistance", f"/v1/plans/{household_id}/measures", body, helper_of(household_id))["measure_id"]

    def income(household_id: str, yuan: str) -> None:
        api.post("assistance", f"/v1/plans/{household_id}/incomes", {
            "period": last_month, "per_capita_net_income": yuan, "rigid_expenditure": "300.00",
            "sources": [{"source": "wages", "amount": yuan}]}, helper_of(household_id))

    # DEMO-0012, a disaster: relief and housing alone leave a working household without income of its own
    # (一兜了之, a gap), mended by an industry measure; civil affairs confirms the relief it paid.
    relief = measure("DEMO-0012", "temporary_relief", amount="3000.00", description="demo: 灾后临时救助")
    measure("DEMO-0012", "housing_renovation", planned_end=(today + timedelta(days=120)).isoformat(),
            amount="25000.00", description="demo: 危房改造")
    measure("DEMO-0012", "industry", planned_end=(today + timedelta(days=365)).isoformat(),
            description="demo: 养殖合作社入股")
    confirmation = f'{{"measure_id": "{relief}", "completed_on": "{today}", "delivered": "3000 元已发放", ' \
                   f'"source_record_id": "DEMO-MCA-RELIEF-1"}}'
    civil_affairs = headers("department_system", "", "demo-civil_affairs", "system", "civil_affairs")
    api.post("assistance", "/v1/measures/completions:batch", None,
             {**civil_affairs, "Content-Type": "application/x-ndjson"}, content=confirmation)
    income("DEMO-0012", "560.00")
    api.post("assistance", "/v1/plans/DEMO-0012/visits", {"visited_on": today.isoformat(),
             "findings": "demo: 房屋已开工，户主在合作社务工"}, helper_of("DEMO-0012"))
    # DEMO-0026, out of work: the minimum allowance only, so its gaps stay open for the township to see.
    measure("DEMO-0026", "minimum_allowance", amount="650.00", description="demo: 低保")
    # DEMO-0033, disability: support and a public-welfare job answer it from the start.
    measure("DEMO-0033", "disability_support", amount="200.00")
    measure("DEMO-0033", "public_welfare_job", planned_end=(today + timedelta(days=365)).isoformat(),
            description="demo: 村保洁员")
    income("DEMO-0033", "780.00")
    say("demo: measures on the three plans (a gap mended on DEMO-0012, gaps open on DEMO-0026), a relief payment "
        "confirmed by civil affairs, incomes of " + last_month)


def _seconds_until(clock, day: date) -> float | None:
    """Real seconds until the clock reaches `day` (UTC midnight), None if it is no simulation that gets
    there quickly (the wall clock, or a catching-up one that meets the wall clock before)."""
    if not isinstance(clock, SimulationClock):
        return None
    moment = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    if clock.catches_up and moment > clock.caught_up_at():
        return None
    return max(0.0, (moment - clock.now()).total_seconds() / clock.speed)
