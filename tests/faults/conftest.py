"""Fixtures of the fault suite: a broker or a PostgreSQL server of the test's own, for the faults
that stop, kill or pause them (the session's are shared with every other test)."""
from __future__ import annotations

import pytest

from runtime.embedded import EmbeddedPostgres, TansuBroker, free_port


@pytest.fixture
def own_broker(tmp_path):
    (tmp_path / "logs").mkdir(exist_ok=True)  # the embedded system's log folder (data_dir = tmp_path)
    broker = TansuBroker(free_port(), tmp_path / "logs" / "tansu.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def own_postgres(tmp_path):
    server = EmbeddedPostgres(tmp_path / "own-pg" / "data")
    yield server
    server.stop()
