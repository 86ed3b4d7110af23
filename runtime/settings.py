"""The one settings object. Every value can be set by a `FANGPIN_` environment variable."""
from __future__ import annotations

from datetime import time
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "fangpin-development-only-secret-change-me-0123456789"
DEV_ID_HASH_KEY = "6b" * 32
DEV_ID_ENCRYPTION_KEY = "3c" * 32
DEV_AUDIT_SIGNING_KEY = "5a" * 32
# The embedded system's ports (runtime.embedded; `fangpin up --ports-from` moves them all together).
DEFAULT_PORTS = {"intake": 8101, "screening": 8102, "assistance": 8103, "exit_review": 8104, "notifier": 8105}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FANGPIN_", env_file=".env", extra="ignore")

    service: str = "intake"
    # development: the built-in development keys are allowed (tests, a laptop). Anything else is a
    # deployment: a service refuses to start while any key is a development one (runtime.keys).
    environment: str = "production"
    # Simulation clock (issue 14; runtime.clock): a training or rehearsal system runs at a chosen
    # date. Set, each service's now is simulation_start + (wall now - simulation_anchor) * speed,
    # the anchor being the wall-clock moment the simulation began (the same for every service;
    # `fangpin up --clock` sets all three). Outside development a service refuses to start with it.
    simulation_start: AwareDatetime | None = None
    simulation_anchor: AwareDatetime | None = None
    simulation_speed: float = 1.0
    simulation_catches_up: bool = False  # meets the wall clock and stays on it (the demo's told history)
    database_url: str = "postgresql+asyncpg://postgres@localhost/fangpin_intake"
    database_pool_size: int = 10

    kafka_bootstrap: str = "127.0.0.1:9092"
    # Tansu fails InitProducerId, so idempotence is off on the embedded broker; on for Apache Kafka.
    kafka_idempotence: bool = False
    kafka_partitions: int = 6
    kafka_replication: int = 1
    topic_prefix: str = ""

    relay_batch_size: int = 1000
    relay_idle_seconds: float = 0.2
    # How often the relay and the consumer check that the broker still has their topics and history.
    broker_check_seconds: float = 5.0

    consumer_max_records: int = 500
    # Must exceed the worst batch transaction, or the group drops the member (aiokafka #848).
    consumer_max_poll_interval_ms: int = 300_000
    consumer_attempts_before_dlq: int = 3
    consumer_retry_backoff_seconds: float = 0.2

    # An Idempotency-Key claimed this long ago and still unanswered is released even if its process
    # seems alive (a request hung, or the process's lease lost): longer than any single request.
    idempotency_in_progress_seconds: float = 300

    # Keys (runtime.keys). Outside development none may be a development key; `fangpin keys new`
    # prints a fresh set. Rotation: a new key under a new id, the previous one kept in *_old_* by its
    # id (still read: tokens and records name the key id they were made with).
    jwt_secret: str = DEV_SECRET
    jwt_key_id: str = "1"
    jwt_old_secrets: dict[str, str] = Field(default_factory=dict)
    jwt_issuer: str = "fangpin"
    # Keys protecting ID numbers at rest: HMAC for matching, AES-GCM for storage (hex, 32 bytes).
    id_hash_key: str = DEV_ID_HASH_KEY
    id_encryption_key: str = DEV_ID_ENCRYPTION_KEY
    id_encryption_key_id: str = "1"
    id_encryption_old_keys: dict[str, str] = Field(default_factory=dict)

    # Signed checkpoints (issue 15; runtime.checkpoints, docs/audit.md): every this many seconds a
    # service signs the Merkle root of its store's events, if any came since its last checkpoint
    # (0: none are written). The signing key is an Ed25519 seed (hex, 32 bytes), a key like the others
    # above (no development key outside development); `fangpin audit public-key` prints its public half.
    checkpoint_interval_seconds: float = 5.0
    audit_signing_key: str = DEV_AUDIT_SIGNING_KEY
    audit_signing_key_id: str = "1"

    # CSV (code,name) of the deployment's village codes; unset: the demo county shipped with intake.
    region_table: str | None = None
    # Indicator thresholds (issue 14): CSV (department,indicator,prefix,year,yuan) of the amounts a
    # thresholded department indicator is held to, e.g. high medical expenses; unset: the demo table
    # shipped with intake. A region and year without a row is a configuration error, never a default.
    indicator_thresholds: str | None = None
    grid_worker_max_households: int = 15
    visit_interval_days: int = 7  # grid workers visit each household weekly
    # Public address (issue 14): where households' phones and staff browsers reach the system, e.g.
    # https://fangpin.county.gov.cn. Links the system hands out are built on it, such as the QR
    # code's {public_base_url}/declare?token=... (一户一码). Default: the embedded notifier's port.
    public_base_url: str = Field("http://127.0.0.1:8105", pattern=r"^https?://[^\s?#]+$")
    # Notifier (issue 18): deliveries by webhook and e-mail (docs/operations.md). The time zone that
    # quiet hours and the daily digest (sent at digest_time) are read in. smtp_host unset: e-mail is
    # not offered as a channel. A failed try is tried again after an exponential backoff with jitter
    # (base, cap; at least the receiver's Retry-After), up to delivery_max_attempts tries in all.
    notifier_timezone: str = "Asia/Shanghai"
    smtp_host: str | None = None
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_sender: str = "fangpin@localhost"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = Field(10, gt=0)
    digest_time: time = time(8, 0)
    webhook_timeout_seconds: float = Field(5.0, gt=0)
    delivery_max_attempts: int = Field(8, ge=1)
    delivery_backoff_base_seconds: float = Field(2.0, gt=0)
    delivery_backoff_cap_seconds: float = Field(3600.0, gt=0)
    # Where a browser page (the notifier serves them at public_base_url) reaches each service's API,
    # e.g. {"intake": "https://fangpin.county.gov.cn/intake"}. Default: the embedded ports; the
    # embedded launcher sets FANGPIN_SERVICE_URLS from the ports it uses.
    service_urls: dict[str, str] = Field(default_factory=lambda: {
        service: f"http://127.0.0.1:{port}" for service, port in DEFAULT_PORTS.items()})
    # Origins besides public_base_url's whose pages may call the APIs from a browser (CORS), e.g. a
    # console served elsewhere; the public origin is always allowed.
    cors_origins: list[str] = Field(default_factory=list)
    # Days each step of the identification ladder may take before it is overdue (the notice's own
    # five days are fixed by the rules, not a setting).
    step_due_days: dict[str, int] = Field(default_factory=lambda: {
        "verification_visit": 7, "village_deliberation": 7, "township_review": 5, "county_decision": 7})
    # CSV (prefix,year,yuan) of monitoring lines; unset: the demo table shipped with screening.
    monitoring_lines: str | None = None
    scheduler_seconds: float = 60.0  # how often screening's clock-driven checks run
    # 体外循环: days after a new minimum-allowance / extreme-poverty warning by which the household
    # must be a subject or in an open case.
    out_of_loop_days: int = 30
    # Assistance (issue 16): a helper's households before they are reported as over the limit (still
    # assigned); days from identification by which a plan has its first measure; CSV of the measures
    # catalogue (kind,name_zh,nature,answers,department; unset: the catalogue shipped with assistance);
    # how often every open plan is checked again (the rules that fall due with time).
    helper_max_households: int = 20
    first_measure_days: int = 30
    measures_catalogue: str | None = None
    plan_check_seconds: float = 3600.0
    helper_visit_interval_days: int = 30  # a helper visits each household they help at least monthly
    # Exit review (issue 17): complete calendar months of the look-back the blockers judge (回头看, at
    # least half a year); the lowest household satisfaction that passes; the greatest age of the exit
    # visit when the blockers are judged.
    exit_look_back_months: int = Field(6, ge=6, le=24)
    exit_satisfaction_bar: Literal["dissatisfied", "basically_satisfied", "satisfied"] = "basically_satisfied"
    exit_findings_max_age_days: int = 30
    exit_look_back_after_months: int = Field(6, ge=1, le=36)  # 回头看: months after an exit's approval
    # Days each step of the exit ladder may take before it is overdue (the notice's five are the rules').
    exit_step_due_days: dict[str, int] = Field(default_factory=lambda: {
        "exit_consent": 10, "township_verification": 5, "county_decision": 7})
    # Notifier routing (issue 18; services/notifier/domain/routing.py, calendar.py): CSV files of the
    # routing table (event → role at a level of the household's region, text, due) and of the working
    # calendar (holidays, make-up working days); unset: the ones shipped with notifier. A task is
    # reminded `task_remind_working_days` before it is due and escalated one level up (village →
    # township → county) `task_escalate_working_days[n]` working days after it (the last figure repeats).
    notifier_routing: str | None = None
    working_calendar: str | None = None
    task_remind_working_days: int = Field(1, ge=0)
    task_escalate_working_days: list[int] = Field(default_factory=lambda: [1, 2], min_length=1)
    task_check_seconds: float = 60.0  # how often reminders and escalations are looked for
    delivery_poll_seconds: float = 0.5  # how often the dispatcher looks for webhooks and e-mail to send
    # A live inbox stream is woken by each commit that adds to the inbox (LISTEN/NOTIFY); it also
    # looks by itself this often, in case a notification of the database was lost.
    inbox_stream_poll_seconds: float = 5.0
    # Processes serving the service's port (uvicorn workers); bulk uploads sent side by side use one each.
    workers: int = 1
    http_host: str = "127.0.0.1"
    http_port: int = 8101
    log_level: str = "info"
    # OTLP/HTTP traces endpoint of a collector, e.g. http://collector:4318/v1/traces; unset: spans stay in-process.
    otlp_endpoint: str | None = None

    # Limits and exposure (issue 13; docs/operations.md). A JSON body is read whole before its
    # endpoint runs, so it has a ceiling; NDJSON batches (:import, :batch) are streamed and have
    # none, only one per line. The docs (/docs, /redoc, /openapi.json) and /metrics: "open", "token"
    # (an administrator's or operator's bearer token) or "off" (404).
    max_body_bytes: int = 1_048_576
    max_ndjson_line_bytes: int = 65_536
    docs_access: Literal["open", "token", "off"] = "open"
    metrics_access: Literal["open", "token", "off"] = "open"

    @field_validator("notifier_timezone")
    @classmethod
    def _known_time_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (KeyError, ValueError, OSError) as exc:  # not found is a KeyError, which pydantic would not report
            raise ValueError(f"not a known time zone: {name!r}") from exc
        return name

    @property
    def uses_development_secret(self) -> bool:
        return self.jwt_secret == DEV_SECRET


@lru_cache
def get_settings() -> Settings:
    return Settings()
