"""Deployment data (issue 14): outside development a service refuses to start without its own tables
and public address, naming each setting; a table that does not load stops it at start, naming the
setting and the fault, in any environment."""
import os
import subprocess

import pytest

from runtime.embedded import free_port
from runtime.keys import new_keys
from runtime.startup import REFUSED_EXIT_CODE
from tests.e2e.test_up_down import REPO, free_ports, up_command
from tests.security.container import DEPLOYMENT_DATA, run_container

pytestmark = pytest.mark.integration


def _without(*names: str) -> dict[str, str]:
    return {name: value for name, value in DEPLOYMENT_DATA.items() if name not in names}


def test_a_deployment_without_its_tables_or_address_refuses_to_start_naming_each_setting():
    refused = run_container({"FANGPIN_HTTP_PORT": str(free_port()), **new_keys()})
    assert refused.returncode == REFUSED_EXIT_CODE, refused.stderr
    for name in ("FANGPIN_REGION_TABLE", "FANGPIN_INDICATOR_THRESHOLDS"):
        assert f"{name} is not set: a deployment gives its own table" in refused.stderr, refused.stderr
    assert "FANGPIN_PUBLIC_BASE_URL is http://127.0.0.1:8105" in refused.stderr
    assert "FANGPIN_MONITORING_LINES" not in refused.stderr  # intake reads no monitoring lines

    refused = run_container({"FANGPIN_HTTP_PORT": str(free_port()), **new_keys(),
                             **_without("FANGPIN_MONITORING_LINES")}, service="screening")
    assert refused.returncode == REFUSED_EXIT_CODE, refused.stderr
    assert "FANGPIN_MONITORING_LINES is not set" in refused.stderr
    assert "FANGPIN_REGION_TABLE" not in refused.stderr and "FANGPIN_PUBLIC_BASE_URL" not in refused.stderr


def test_a_table_that_does_not_load_stops_the_service_at_start_in_any_environment(tmp_path):
    broken = tmp_path / "lines.csv"
    broken.write_text("prefix,year,yuan\n410721,2025,7700\n410721,2025,7800\n")
    for environment in ({"FANGPIN_ENVIRONMENT": "development"}, new_keys()):
        refused = run_container({"FANGPIN_HTTP_PORT": str(free_port()), **environment, **DEPLOYMENT_DATA,
                                 "FANGPIN_MONITORING_LINES": str(broken)}, service="screening")
        assert refused.returncode == REFUSED_EXIT_CODE, refused.stderr
        assert f"FANGPIN_MONITORING_LINES ({broken}) does not load" in refused.stderr, refused.stderr
        assert "twice" in refused.stderr, refused.stderr

    missing = tmp_path / "no-such-regions.csv"
    refused = run_container({"FANGPIN_HTTP_PORT": str(free_port()), **new_keys(), **DEPLOYMENT_DATA,
                             "FANGPIN_REGION_TABLE": str(missing)})
    assert refused.returncode == REFUSED_EXIT_CODE
    assert f"FANGPIN_REGION_TABLE ({missing}) does not load" in refused.stderr


def test_up_outside_development_says_what_is_missing_before_starting_anything(tmp_path):
    """`fangpin up` without --demo is a county's own system: it names each missing setting once and
    starts nothing (rather than five services exiting again and again)."""
    kafka_port, first_port = free_ports()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FANGPIN_")}, "FANGPIN_ENVIRONMENT": "production"}
    data_dir = tmp_path / "county"
    refused = subprocess.run(up_command(data_dir, kafka_port, first_port), cwd=REPO, env=env, capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    for name in ("FANGPIN_REGION_TABLE", "FANGPIN_INDICATOR_THRESHOLDS", "FANGPIN_MONITORING_LINES",
                 "FANGPIN_PUBLIC_BASE_URL"):
        assert name in refused.stdout, refused.stdout
    assert "development key" not in refused.stdout  # up made keys of its own
    assert "Nothing was started" in refused.stdout and "./fangpin up --demo" in refused.stdout
    assert not (data_dir / "pg").exists() and not (data_dir / "fangpin.pid").exists()
