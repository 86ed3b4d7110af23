"""Settings a service refuses to start with, gathered in one check that runs before anything else
(runtime.serve, and create_app for any other way of running a service): development keys and a
simulation clock outside development, malformed keys, an incomplete simulation. The refusal names
each setting and what to do; the process exits with REFUSED_EXIT_CODE (78, EX_CONFIG).
"""
from __future__ import annotations

from urllib.parse import urlsplit

from runtime.clock import simulation_problems
from runtime.keys import KEY_ADVICE, key_problems
from runtime.service import ServiceDefinition
from runtime.settings import Settings

REFUSED_EXIT_CODE = 78  # EX_CONFIG


class StartRefused(RuntimeError):
    """The settings are not fit for this environment; the message says which and what to do."""


def refuse_unsafe_settings(settings: Settings, definition: ServiceDefinition | None = None) -> None:
    """Raise StartRefused when any setting is not fit for this environment, or the service's
    deployment data (its `definition`'s) is missing or does not load."""
    keys = key_problems(settings)
    problems = keys + simulation_problems(settings)
    if definition is not None:
        problems += reference_data_problems(settings, definition)
        problems += [problem for check in definition.start_checks for problem in check(settings)]
    if problems:
        raise StartRefused(
            f"{settings.service}: refusing to start (FANGPIN_ENVIRONMENT={settings.environment}):\n"
            + "".join(f"  - {p}\n" for p in problems) + (KEY_ADVICE if keys else ""))


def reference_data_problems(settings: Settings, definition: ServiceDefinition) -> list[str]:
    """Each deployment table the service reads: set outside development (the demo county's tables
    describe no real county), and loading without error."""
    problems = []
    for name, load in definition.reference_data.items():
        variable, path = f"FANGPIN_{name.upper()}", getattr(settings, name)
        if path is None and settings.environment != "development":
            problems.append(f"{variable} is not set: a deployment gives its own table (the demo county's is for "
                            "development only; deploy/README.md says what each table holds)")
            continue
        try:
            load(path)
        except (OSError, ValueError, KeyError, LookupError) as exc:
            problems.append(f"{variable} ({path or 'the demo table'}) does not load: {exc}")
    return problems


def public_address_problems(settings: Settings) -> list[str]:
    """Outside development, links handed to households (QR codes) must reach the system from their
    phones, not point at the machine that printed them."""
    host = urlsplit(settings.public_base_url).hostname or ""
    if settings.environment != "development" and (host == "localhost" or host.startswith("127.") or host == "::1"):
        return [f"FANGPIN_PUBLIC_BASE_URL is {settings.public_base_url}: the address households' QR codes open "
                "must be one their phones reach (e.g. https://fangpin.county.gov.cn)"]
    return []
