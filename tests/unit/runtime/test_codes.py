"""Every reason the services give has a stable code (issue 14, item 6): each refusal names its rule in
`code`, each field error and rejected batch row its own, and each recommendation reason and ladder
step its Chinese term where the source documents give one. Read from the source (ast) and from the
pure rules, without starting a service."""
import ast
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from contracts.codes import CODES, REGISTERED, Kind, Refusal
from runtime.problems import Problem, field_error
from services.screening.domain import Findings, ReasonCode, Step, recommend
from services.screening.app import SERVICE as SCREENING
from services.screening.domain.ladder import CaseState, CountyDecision, RecordVerification, decide
from runtime.ndjson import first_error

ROOT = Path(__file__).resolve().parents[3]
REGISTRY = ROOT / "contracts" / "codes.py"
# Whatever refuses a request says which rule refused it.
REFUSALS = {"Problem", "field_error"}
# Calls whose first argument is a code (pydantic's custom errors, the field rules of contracts/fields.py).
CODE_FIRST = {"PydanticCustomError", "FieldProblem", "InvalidIdNumber", "VisitRefused",
              "NotAllowed", "OutOfOrder", "NotFound", "Invalid"}  # screening's kinds of refusal


def _sources():
    for folder in ("runtime", "services", "contracts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path, ast.parse(path.read_text(), filename=str(path))


def _name(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{node.lineno}"


def test_every_refusal_in_the_source_names_a_registered_code():
    uncoded, unregistered = [], []
    for path, tree in _sources():
        for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
            name = _name(call)
            keywords = {k.arg: k.value for k in call.keywords}
            if name in REFUSALS and "code" not in keywords:
                uncoded.append(f"{_where(path, call)}: {name}(…) without code=")
            written = [keywords["code"]] if "code" in keywords else []
            if name in CODE_FIRST and call.args:
                written.append(call.args[0])
            for value in written:
                if isinstance(value, ast.Constant) and value.value not in CODES:
                    unregistered.append(f"{_where(path, value)}: {value.value!r} is not in contracts/codes.py")
    assert not uncoded, "refusals that name no rule (give code=…):\n" + "\n".join(uncoded)
    assert not unregistered, "codes missing from the registry:\n" + "\n".join(unregistered)


def test_every_registered_code_is_given_somewhere():
    """No code in the registry that nothing gives (a rule renamed or removed leaves none behind)."""
    written = {node.value for path, tree in _sources() if path != REGISTRY
               for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    stale = sorted(set(CODES) - written)
    assert not stale, f"registered, but given nowhere in runtime/, services/ or contracts/: {stale}"


def test_codes_are_snake_case_with_an_english_text_and_registered_once():
    assert len(CODES) == len(REGISTERED), "a code is registered twice"
    for code, entry in CODES.items():
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", code), code
        assert entry.code == code and entry.text.strip(), code


def test_recommendation_reasons_and_ladder_steps_are_registered_with_the_seeds_terms():
    reasons = {code: CODES[code] for code in ReasonCode}
    assert all(entry.kind is Kind.RECOMMENDATION and entry.text_zh for entry in reasons.values())
    assert reasons[ReasonCode.EDUCATION_NOT_ASSURED].text_zh == "义务教育未保障"
    assert reasons[ReasonCode.MEDICAL_CARE_NOT_ASSURED].text_zh == "基本医疗未保障"
    assert reasons[ReasonCode.HOUSING_NOT_SAFE].text_zh == "住房安全未保障"
    assert reasons[ReasonCode.DRINKING_WATER_NOT_SAFE].text_zh == "饮水安全未保障"
    assert reasons[ReasonCode.INCOME_UNDER_LINE].text_zh == "家庭年人均纯收入低于监测线"
    steps = {step: CODES[step].text_zh for step in Step if step is not Step.CLOSED}
    assert steps == {Step.VERIFICATION_VISIT: "入户核查", Step.VILLAGE_DELIBERATION: "村级评议",
                     Step.PUBLIC_NOTICE: "公示", Step.TOWNSHIP_REVIEW: "乡镇初审", Step.COUNTY_DECISION: "县级审定"}
    assert all(CODES[step].kind is Kind.LADDER_STEP for step in Step)


def test_a_recommendations_reasons_carry_code_text_and_chinese_text():
    findings = Findings(Decimal("6200"), Decimal("0"), education_ok=False, medical_ok=True, housing_safe=True,
                        water_safe=False)
    reasons = recommend(findings, Decimal("8000")).reasons
    assert [(r.code, r.text_zh) for r in reasons] == [
        ("income_under_line", "家庭年人均纯收入低于监测线"), ("education_not_assured", "义务教育未保障"),
        ("drinking_water_not_safe", "饮水安全未保障")]
    assert reasons[0].text == "per-capita net income 6200 is under the monitoring line 8000"


def test_a_ladder_refusal_names_its_rule():
    state = CaseState("c1", "h1", "410721001001")
    approve = CountyDecision("approve")
    with pytest.raises(Refusal) as early:
        decide(state, approve, "county_officer", date(2026, 11, 20))
    assert (early.value.code, early.value.details["expected_step"]) == ("ladder_step_out_of_order", Step.VERIFICATION_VISIT)
    visit = RecordVerification(Findings(Decimal("9000"), Decimal("0"), True, True, True, True), Decimal("8000"))
    with pytest.raises(Refusal) as wrong_role:
        decide(state, visit, "county_officer", date(2026, 11, 20))
    assert wrong_role.value.code == "ladder_role_not_allowed"
    at_county = CaseState("c1", "h1", "410721001001", step=Step.COUNTY_DECISION)
    with pytest.raises(Refusal) as incomplete:
        decide(at_county, approve, "county_officer", date(2026, 11, 20))
    assert (SCREENING.refusal_statuses[type(incomplete.value)], incomplete.value.code) == (
        422, "approval_without_category_or_risk_types")


def test_a_problem_without_a_rule_of_its_own_falls_back_to_its_status_and_codes_its_errors():
    assert Problem(404, "Not found").body()["code"] == "not_found"
    refused = field_error("cursor", "not a cursor this API gave out", code="cursor_invalid").body()
    assert refused["code"] == "cursor_invalid"
    assert refused["errors"] == [{"field": "cursor", "message": "not a cursor this API gave out", "code": "cursor_invalid"}]
    mixed = Problem(422, "Invalid request", code="invalid_request",
                    errors=[{"field": "a", "message": "m", "code": "missing"}, {"field": "b", "message": "n"}]).body()
    assert [e["code"] for e in mixed["errors"]] == ["missing", "invalid_request"]


class _Row(BaseModel):
    size: int


def test_a_rejected_rows_code_is_pydantics_error_type():
    with pytest.raises(ValidationError) as caught:
        _Row.model_validate({})
    assert first_error(caught.value) == {"field": "size", "code": "missing", "reason": "Field required"}


def test_the_http_api_doc_lists_every_code():
    text = (ROOT / "docs" / "http-api.md").read_text()
    section = text.split("\n## Problem codes\n", 1)
    assert len(section) == 2, "docs/http-api.md has no section '## Problem codes'"
    listed = set(re.findall(r"^\| `([a-z0-9_]+)` \|", section[1].split("\n## ", 1)[0], re.M))
    assert listed == set(CODES), (f"not in the doc: {sorted(set(CODES) - listed)}; "
                                  f"in the doc, not registered: {sorted(listed - set(CODES))}")
