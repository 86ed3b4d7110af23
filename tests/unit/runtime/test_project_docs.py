"""The project's own docs stay with the code (issue 14, item 8): docs/http-api.md names every endpoint
of every service in that service's section, docs/events.md every event type with its version,
producer, topic, payload fields and consumers, and neither names one that is gone. The READMEs link
them, and nothing in the repository points at documents outside it."""
import re
from pathlib import Path

import pytest
from starlette.routing import Route

from contracts.audit import EVERY_SERVICE as PRODUCED_BY_EVERY_SERVICE
from contracts.catalog import all_payload_classes
from contracts.topics import SERVICES, events_topic
from runtime.app import create_app, load_definition
from runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
EVERY_SERVICE = "Every service"
ENDPOINT_HEADING = re.compile(r"^### `([A-Z]+) (/\S*)`\s*$", re.M)


def _sections(text: str, level: str) -> dict[str, str]:
    """Heading text (without the hashes) -> the text under it, up to the next heading of its level."""
    parts = re.split(rf"^{level} (.+)$", text, flags=re.M)
    return {heading.strip(): body for heading, body in zip(parts[1::2], parts[2::2])}


def _endpoints(service: str) -> set[tuple[str, str]]:
    """Every method and path the service answers with everything exposed: its API description's
    operations, and the routes kept out of it (/docs, /redoc, /openapi.json)."""
    app = create_app(load_definition(service), Settings(docs_access="open", metrics_access="open"))
    found = {(method.upper(), path) for path, operations in app.openapi()["paths"].items() for method in operations}
    for route in app.routes:
        if isinstance(route, Route) and route.methods:
            found |= {(method, route.path) for method in route.methods - {"HEAD"}}
    return found


def _service_sections() -> dict[str, str]:
    sections = _sections((DOCS / "http-api.md").read_text(), "##")
    return {name: next((body for heading, body in sections.items() if heading.split()[0] == name), "")
            for name in (*SERVICES, EVERY_SERVICE.split()[0])}


def test_the_http_api_doc_names_every_endpoint_in_its_services_section():
    sections = _service_sections()
    endpoints = {service: _endpoints(service) for service in SERVICES}
    common = set.intersection(*endpoints.values())
    documented_common = set(ENDPOINT_HEADING.findall(sections["Every"]))
    missing, stale = [], []
    for service in SERVICES:
        documented = set(ENDPOINT_HEADING.findall(sections[service]))
        missing += [f"{service}: {m} {p}" for m, p in sorted(endpoints[service] - documented - (documented_common & common))]
        stale += [f"{service}: {m} {p}" for m, p in sorted(documented - endpoints[service])]
    stale += [f"every service: {m} {p}" for m, p in sorted(documented_common - common)]
    assert not missing, "docs/http-api.md does not name these endpoints (### `METHOD /path` in the service's section):\n" + "\n".join(missing)
    assert not stale, "docs/http-api.md names endpoints that do not exist:\n" + "\n".join(stale)


def _event_types() -> dict:
    # Registered by contracts/ itself: not the abstract bases (_IntakeEvent…), not test payloads.
    return {name: cls for name, cls in all_payload_classes().items()
            if cls.__module__.startswith("contracts.") and not name.startswith("_")}


def _consumers() -> dict[str, set[str]]:
    consumers: dict[str, set[str]] = {}
    for service in SERVICES:
        definition = load_definition(service)
        for event_type in (*definition.handlers, *definition.projections.mirrors):  # acted on, or mirrored
            consumers.setdefault(event_type, set()).add(service)
    return consumers


def test_the_events_doc_describes_every_event_type():
    sections = _sections((DOCS / "events.md").read_text(), "###")
    by_type = {heading.split()[0]: (heading, body) for heading, body in sections.items()}
    consumers = _consumers()
    problems = []
    for event_type, cls in sorted(_event_types().items()):
        if event_type not in by_type:
            problems.append(f"{event_type}: no section (### {event_type} (v{cls.schema_version}))")
            continue
        heading, body = by_type[event_type]
        if heading != f"{event_type} (v{cls.schema_version})":
            problems.append(f"{event_type}: the heading says {heading!r}, the schema version is {cls.schema_version}")
        topic = events_topic("<service>") if cls.producer == PRODUCED_BY_EVERY_SERVICE else events_topic(cls.producer)
        if f"**Producer** {cls.producer}, on `{topic}`" not in body:
            problems.append(f"{event_type}: producer {cls.producer} and topic {topic} not named")
        said = re.search(r"\*\*consumed by\*\*(.*)$", body, re.M)
        named = {s for s in SERVICES if said and re.search(rf"\b{s}\b", said.group(1))}
        if named != consumers.get(event_type, set()):
            problems.append(f"{event_type}: consumed by {sorted(consumers.get(event_type, set())) or 'no service'}, "
                            f"the doc says {sorted(named) or 'no service'}")
        problems += [f"{event_type}: field `{field}` not described" for field in cls.model_fields if f"`{field}`" not in body]
    problems += [f"{name}: a section for an event type that does not exist" for name in sorted(set(by_type) - set(_event_types()))]
    assert not problems, "docs/events.md is behind contracts/ and the handlers:\n" + "\n".join(problems)


SKIPPED_DIRS = {".git", ".venv", ".fangpin", "__pycache__", ".pytest_cache", ".hypothesis", "fangpin.egg-info", "node_modules"}
TEXT_SUFFIXES = {".md", ".py", ".toml", ".yml", ".yaml", ".txt", ".cfg", ".ini", ".sh", ".json", ""}


def _repository_text_files():
    for path in ROOT.rglob("*"):
        if path.is_file() and not SKIPPED_DIRS & set(path.relative_to(ROOT).parts) and path.suffix in TEXT_SUFFIXES:
            try:
                yield path, path.read_text()
            except UnicodeDecodeError:
                continue


def test_the_readmes_link_the_projects_own_docs_and_nothing_outside_the_repository():
    readme, index = (ROOT / "README.md").read_text(), (DOCS / "README.md").read_text()
    for page in ("http-api.md", "events.md", "architecture.md", "operations.md"):
        assert f"](docs/{page})" in readme, f"README.md does not link docs/{page}"
        assert f"]({page})" in index, f"docs/README.md does not link {page}"
    outside = re.compile(r"\.\./shared\b|(?<![\w-])(?:API|DESIGN)\.md\b")
    this_file = Path(__file__).resolve()
    pointing_out = [f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
                    for path, text in _repository_text_files() if path != this_file for m in outside.finditer(text)]
    assert not pointing_out, "these point at documents outside the repository (use docs/):\n" + "\n".join(pointing_out)
    broken = []
    for path, text in _repository_text_files():
        if path.suffix != ".md":
            continue
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # a URL, not a file of the repository
            resolved = (path.parent / target).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                broken.append(f"{path.relative_to(ROOT)} -> {target}")
    assert not broken, "links to files that are not in the repository:\n" + "\n".join(broken)
