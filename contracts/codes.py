"""The stable codes of every reason the services give: why a recommendation is what it is, which rule
refused a request, a field or a batch row, which ladder step a case expects.

Callers match on the code, never on a text: texts may be reworded, a code stays. Each has an English
text saying the rule and, where the source documents give the term, its Chinese text (`text_zh`).
Every service lists them at `GET /v1/codes`; docs/http-api.md ("Problem codes") says where each
appears. Validation errors carry, besides these, pydantic's own error types (`missing`,
`string_too_short`, `literal_error`, …), which are pydantic's vocabulary and not listed here.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    RECOMMENDATION = "recommendation"  # a reason of an eligibility recommendation (screening)
    LADDER_STEP = "ladder_step"  # a step of the identification ladder, as its refusals name it
    REFUSAL = "refusal"  # a problem document's `code`, an `errors[].code`, a rejected batch row's `code`
    ROW_OUTCOME = "row_outcome"  # why a batch row was kept without raising a clue
    EXIT_BLOCKER = "exit_blocker"  # one of the seven blockers of an exit 七不消 (exit_review)


@dataclass(frozen=True)
class Code:
    code: str
    kind: Kind
    text: str
    text_zh: str | None = None


def _kind(kind: Kind, *entries: tuple) -> list[Code]:
    return [Code(entry[0], kind, *entry[1:]) for entry in entries]


REGISTERED: tuple[Code, ...] = (
    # 两不愁三保障 and the monitoring line (seeds: 家庭年人均纯收入…作为监测线，兼顾收支情况、"三保障"和饮水安全)
    *_kind(
        Kind.RECOMMENDATION,
        ("income_under_line", "per-capita net income is under the monitoring line", "家庭年人均纯收入低于监测线"),
        ("rigid_expenditure_leaves_under_line", "rigid expenditure leaves per-capita income under the monitoring line",
         "兼顾收支情况，家庭年人均纯收入扣除支出后低于监测线"),
        ("education_not_assured", "compulsory education is not assured", "义务教育未保障"),
        ("medical_care_not_assured", "basic medical care is not assured", "基本医疗未保障"),
        ("housing_not_safe", "safe housing is not assured", "住房安全未保障"),
        ("drinking_water_not_safe", "safe drinking water is not assured", "饮水安全未保障"),
        ("above_line_and_assured", "income is at or above the monitoring line, rigid expenditure is borne, and the "
         "three guarantees and safe drinking water are assured", "家庭年人均纯收入不低于监测线，“三保障”和饮水安全有保障"),
    ),
    # 入户核查 → 村级评议 → 公示 → 乡镇初审 → 县级审定
    *_kind(
        Kind.LADDER_STEP,
        ("verification_visit", "the verification visit", "入户核查"),
        ("village_deliberation", "the village deliberation", "村级评议"),
        ("public_notice", "the public notice (5 days, objections)", "公示"),
        ("township_review", "the township review", "乡镇初审"),
        ("county_decision", "the county decision", "县级审定"),
        ("closed", "the case is closed: no step is left"),
        # an exit, 怎么进、怎么出: the same steps, with the four parties' consent and the blockers first
        ("exit_consent", "the four parties' consent to the exit (household, helper, work team, village committee)",
         "四方认可"),
        ("township_verification", "the township's verification of the exit", "乡镇核实"),
    ),
    # 七不消: an exit is approved only when none of these holds (rule version in ExitAssessed)
    *_kind(
        Kind.EXIT_BLOCKER,
        ("income_not_stable", "income per person was not above the monitoring line in every month of the look-back",
         "收入不持续稳定不消"),
        ("guarantees_unresolved", "compulsory education, basic medical care, safe housing or safe water is not assured",
         "“三保障”和饮水安全问题未解决不消"),
        ("measures_not_carried_out", "a measure is past its end without being completed, or the plan has an open gap",
         "帮扶措施未落实不消"),
        ("household_consent_insufficient", "a party did not consent, or the household's satisfaction is below the bar",
         "家庭认可度不达标不消"),
        ("sudden_difficulty_unresolved", "a risk raised in the look-back has no completed measure answering it",
         "突发困难未化解不消"),
        ("monitoring_lapsed", "a month of the look-back without a helper's or grid worker's visit", "动态监测不到位不消"),
        ("procedure_irregular", "a step of the exit is missing, out of order or out of time", "程序不规范不消"),
    ),
    *_kind(
        Kind.REFUSAL,
        # who calls
        ("token_missing", "no bearer token was sent"),
        ("token_invalid", "the bearer token is not valid: its signature, key id, issuer, expiry or claims"),
        ("region_missing_in_token", "a staff token names no region, and its role does not act nationwide"),
        ("role_not_allowed", "the token's kind or role may not do this"),
        ("region_outside_scope", "the region is outside the token's region"),
        ("region_prefix_invalid", "region: not a prefix of a 12-digit region code"),
        ("household_token_required", "a declaration is made by the household itself, with the token of its QR code"),
        ("not_own_household", "a household's token acts for its own household and members only"),
        ("department_missing_in_token", "a department's token names its department"),
        ("department_mismatch", "a department's token acts for its own department only"),
        ("worker_id_not_token_holder", "a grid worker records their own visits"),
        ("household_not_assigned_to_grid_worker", "a grid worker visits the households assigned to them"),
        # what is asked for
        ("not_found", "no such resource"),
        ("method_not_allowed", "the resource does not answer this method"),
        ("household_not_found", "no such household is registered"),
        ("case_not_found", "no such verification case"),
        ("subject_not_found", "the household is not a monitoring subject"),
        ("notification_not_found", "no such notification in the caller's inbox"),
        ("delivery_not_found", "no such delivery in the ledger"),
        ("delivery_not_dead", "only a dead delivery (given up) is sent again: this one is still being tried or arrived"),
        ("subscription_not_found", "no such webhook subscription of the caller's"),
        ("stream_position_invalid", "Last-Event-ID is not an id this stream sent"),
        # the request as sent
        ("bad_request", "the request could not be read"),
        ("http_error", "the request was refused by the HTTP layer"),
        ("invalid_request", "the request did not validate: errors[] names each field and its code"),
        ("json_too_deep", "the JSON body is nested more deeply than any request of this API"),
        ("body_not_utf8", "the body is not UTF-8"),
        ("body_too_large", "the request body exceeds max_body_bytes"),
        ("ndjson_line_too_long", "an NDJSON line exceeds max_ndjson_line_bytes"),
        ("text_holds_nul", "a text field holds the NUL character, which the database cannot store"),
        ("cursor_invalid", "not a cursor this API gave out"),
        ("as_of_without_overdue", "as_of goes with overdue=true"),
        ("as_of_without_priority_group", "as_of goes with priority_group"),
        ("as_of_without_time_zone", "as_of is a date or a moment with a time zone"),
        ("as_of_out_of_range", "as_of is from 2000-01-01 to 2999-12-31"),
        ("moment_without_time_zone", "a moment has a time zone"),
        ("moment_before_2000", "a moment is not before 2000-01-01T00:00:00Z"),
        ("moment_in_future", "a moment is not in the future (beyond a few minutes of clock skew)"),
        ("birth_date_before_1900", "a birth date is not before 1900-01-01"),
        ("birth_date_after_today", "a birth date is not after today"),
        ("birth_date_differs_from_id_number", "a member's birth_date is the one in their ID number"),
        ("amount_negative", "an amount is 0 or more"),
        ("amount_above_maximum", "an amount is at most its maximum (the indicator's, or 100,000,000 yuan)"),
        ("id_number_malformed", "an ID number is 17 digits followed by a digit or X"),
        ("id_number_check_digit_wrong", "an ID number's check digit does not match (GB 11643)"),
        ("id_number_birth_date_invalid", "the birth date in an ID number is not a date"),
        ("id_number_repeated_in_household", "the same ID number appears twice in one household"),
        ("household_or_id_number_missing", "a warning or declaration names a household_id or an id_number"),
        ("income_year_in_future", "income_year is not after the current year"),
        # the registry and the warnings
        ("region_not_in_table", "the region code is not a village of the deployment's region table"),
        ("household_repeated_in_request", "the same household_id appears twice in one request"),
        ("person_in_two_households_of_request", "one person appears in two households of one request"),
        ("member_registered_in_other_household", "a member is already registered in another household"),
        ("indicator_unknown", "the department has no such indicator in the catalogue"),
        ("amount_or_judgement_missing", "a thresholded indicator needs the amount, or the department's over_threshold"),
        ("over_threshold_without_threshold", "an indicator without a threshold cannot be under one"),
        # the identification ladder and the subjects
        ("case_closed", "the case is closed"),
        ("ladder_step_out_of_order", "the case is at another step: expected_step names it"),
        ("ladder_role_not_allowed", "the step the case is at is taken by other roles: allowed_roles names them"),
        ("public_notice_ended", "the public notice has ended: no objection is taken"),
        ("objection_not_open", "no such open objection"),
        ("approval_without_category_or_risk_types", "an approval names the category and at least one risk type"),
        ("rejection_without_reason", "a rejection gives its reason"),
        ("monitoring_line_missing", "no monitoring line for the case's region and the income year"),
        ("subject_already_removed", "the subject is already removed"),
        ("removal_already_pending", "a removal is already waiting for the county's decision"),
        ("removal_without_reason", "a removal gives its reason"),
        ("no_removal_pending", "no removal is waiting for a decision"),
        ("subject_not_monitored", "only a monitored subject is marked protected"),
        ("protection_already_marked_or_pending", "the subject is already protected, or waits for the township"),
        ("household_members_not_yet_known", "the household's members are not known to screening yet"),
        ("member_can_work", "a member has labour capacity: the protected mark is for households where no one can work"),
        ("no_protection_pending", "no protected mark is waiting for confirmation"),
        # assistance: plans, helpers, measures, incomes
        ("plan_not_found", "the household has no plan: it is not a monitoring subject"),
        ("plan_role_not_allowed", "plans are changed by helpers and village, township or county staff: allowed_roles names them"),
        ("not_your_household", "a helper sees and changes the households they help only"),
        ("plan_closed", "the plan is closed: the subject was removed or its exit approved"),
        ("measure_kind_unknown", "no such measure in the catalogue (GET /v1/measures/catalogue)"),
        ("measure_ends_before_start", "a measure's planned end is not before its start"),
        ("measure_not_found", "no such measure"),
        ("measure_not_active", "the measure is completed or cancelled already"),
        ("cancellation_without_reason", "a cancelled measure says why"),
        ("income_period_in_future", "an income is recorded for a period that has begun"),
        ("helper_unknown", "not a helper of the staff directory (notifier, role helper)"),
        ("helper_unchanged", "that helper already helps the household"),
        ("visit_in_future", "a visit is recorded on or after the day it happened"),
        ("completion_in_future", "a delivery is confirmed on or after the day it was completed"),
        # exit_review: exit cases
        ("subject_not_monitored_for_exit", "only a monitored subject is proposed for exit"),
        ("subject_protected", "a whole household without labour capacity (整户无劳动能力兜底保障户) is not marked risk-eliminated"),
        ("exit_already_open", "the household is already in an open exit case"),
        ("exit_not_found", "no such exit case"),
        ("exit_closed", "the exit case is closed"),
        ("exit_step_out_of_order", "the exit case is at another step: expected_step names it"),
        ("exit_role_not_allowed", "the step the exit case is at is taken by other roles: allowed_roles names them"),
        ("not_that_party", "a consent is given by that party: the household's member, its helper, the work team, the village committee"),
        ("consent_already_recorded", "that party's consent is recorded already"),
        ("member_not_in_household", "the member who signs for the household is one of its members"),
        ("findings_in_future", "the exit visit is recorded on or after the day it happened"),
        ("look_back_not_due", "the exit's look-back is not due (it falls due months after the approval)"),
        ("look_back_already_done", "the exit has been looked back at"),
        ("exit_never_approved", "the household has no approved exit standing: nothing to roll back"),
        ("rollback_already_pending", "a rollback is already waiting for the county's decision"),
        ("rollback_without_reason", "a rollback says why the exit was not right"),
        ("no_rollback_pending", "no rollback is waiting for a decision"),
        ("statistics_period_invalid", "no such period: a month 2026-10, a quarter 2026-Q4, a year 2026 or an ISO week 2026-W42"),
        ("statistics_period_in_future", "the period has not begun"),
        ("statistics_already_filed", "the region has filed that month's figures already"),
        ("filing_region_not_own_level", "a township files for its township, a county for its county"),
        # the system
        ("idempotency_key_reused", "the Idempotency-Key was used with a different request body"),
        ("idempotency_in_progress", "a request with this Idempotency-Key is still being processed"),
        ("concurrent_change", "another request changed the same record at the same time; retry"),
        ("configuration_missing_row", "the deployment's data lacks a row the request needs; an operator adds it"),
        ("encryption_key_missing", "a row is sealed under an encryption key this service does not hold"),
        ("database_unavailable", "the database is not available; nothing was stored"),
        ("internal_error", "an unexpected error, logged"),
    ),
    *_kind(
        Kind.ROW_OUTCOME,
        ("amount_under_threshold", "the amount is under its indicator's threshold for the region and year: no clue"),
        ("department_judged_under_threshold", "the department judged it under its threshold: no clue"),
        ("warning_repeated_in_request", "the same warning appears earlier in this request"),
    ),
)

CODES: dict[str, Code] = {entry.code: entry for entry in REGISTERED}


def text_zh(code: str) -> str | None:
    """The Chinese term of a registered code, where the source documents give one."""
    return CODES[code].text_zh


class Refusal(Exception):
    """A domain rule refused a command. `code` names the rule (registered above); `details` are what
    a caller needs to act on it (the step a case expects, the roles that may take it). It knows
    nothing of HTTP: each service maps its kinds of refusal to a status in one place
    (ServiceDefinition.refusal_statuses), and the app factory turns them into problem documents."""

    def __init__(self, code: str, message: str, **details) -> None:
        assert code in CODES, f"unregistered code {code!r}"
        super().__init__(message)
        self.code, self.details = code, details
