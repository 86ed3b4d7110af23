"""A simulation clock (issue 14) is for training and rehearsal: a service outside development refuses
to start on one, at the container's entrypoint, naming the setting (a simulated date in a county's
real records would be a false record)."""
from datetime import datetime, timedelta, timezone

import pytest

from runtime.clock import simulation_environment
from runtime.embedded import free_port
from runtime.keys import new_keys
from runtime.startup import REFUSED_EXIT_CODE
from tests.security.container import DEPLOYMENT_DATA, run_container

pytestmark = pytest.mark.integration
START = datetime(2025, 4, 10, 10, 0, tzinfo=timezone(timedelta(hours=8)))


def test_the_container_refuses_to_start_on_a_simulation_clock_outside_development():
    simulated = simulation_environment(START, 60.0, datetime.now(timezone.utc))
    refused = run_container({"FANGPIN_HTTP_PORT": str(free_port()), **new_keys(), **DEPLOYMENT_DATA, **simulated})
    assert refused.returncode == REFUSED_EXIT_CODE, refused.stderr
    assert "FANGPIN_SIMULATION_START is set (a simulation clock from 2025-04-10T10:00:00+08:00)" in refused.stderr
    assert "FANGPIN_ENVIRONMENT=development" in refused.stderr
    assert "development key" not in refused.stderr and "fangpin keys new" not in refused.stderr  # only what is wrong

    # Development may run one, but every service must be given the simulation's anchor.
    unanchored = {name: value for name, value in simulated.items() if name != "FANGPIN_SIMULATION_ANCHOR"}
    refused = run_container({"FANGPIN_HTTP_PORT": str(free_port()), "FANGPIN_ENVIRONMENT": "development", **unanchored})
    assert refused.returncode == REFUSED_EXIT_CODE, refused.stderr
    assert "FANGPIN_SIMULATION_ANCHOR is unset" in refused.stderr
    assert "FANGPIN_SIMULATION_START is set" not in refused.stderr
