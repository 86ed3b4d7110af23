"""The container's own start: the Dockerfile's ENTRYPOINT, CMD and ENV, run as a process with this
interpreter in place of the image's `python` (no Docker on the test machines)."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INTAKE_DATA = ROOT / "services" / "intake" / "data"
# What a deployment gives besides its keys: its tables (here the demo county's, named explicitly, as a
# county names its own) and the address households reach it at.
DEPLOYMENT_DATA = {
    "FANGPIN_REGION_TABLE": str(INTAKE_DATA / "regions-410721-demo.csv"),
    "FANGPIN_INDICATOR_THRESHOLDS": str(INTAKE_DATA / "indicator-thresholds-demo.csv"),
    "FANGPIN_MONITORING_LINES": str(ROOT / "contracts" / "data" / "monitoring-lines-demo.csv"),
    "FANGPIN_PUBLIC_BASE_URL": "https://fangpin.county.example.org",
}


def container_command(service: str | None = None) -> tuple[list[str], dict[str, str]]:
    """The container's command (ENTRYPOINT + CMD, or + `service` in place of CMD) and its ENV."""
    entrypoint, cmd, environment = [], [], {}
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        instruction, _, rest = line.partition(" ")
        if instruction == "ENTRYPOINT":
            entrypoint = json.loads(rest)
        elif instruction == "CMD":
            cmd = json.loads(rest)
        elif instruction == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                environment[name] = value
    assert entrypoint and entrypoint[0] == "python", entrypoint
    return [sys.executable, *entrypoint[1:], *([service] if service else cmd)], environment


def container_environment(extra: dict[str, str], service: str | None = None) -> tuple[list[str], dict[str, str]]:
    command, environment = container_command(service)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FANGPIN_")}  # nothing from the test session
    return command, {**clean, **environment, **extra}


def run_container(extra: dict[str, str], service: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    command, env = container_environment(extra, service)
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
