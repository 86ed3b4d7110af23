"""No background task of a service may end while it runs (issue 12 §3): one that does fails
/readyz and calls the process's end, for a supervisor to start it again."""
import asyncio

import httpx
import pytest

from runtime.app import create_app, load_definition
from runtime.clock import SystemClock
from runtime.db import ensure_database
from tests.conftest import eventually

pytestmark = pytest.mark.integration


async def test_a_background_task_that_dies_fails_readiness_and_ends_the_process(service_settings):
    settings = service_settings("screening")
    await ensure_database(settings.database_url)
    ended = []
    app = create_app(load_definition("screening"), settings, SystemClock(), on_task_death=lambda: ended.append(True))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://screening") as client:
            async def ready():
                r = await client.get("/readyz")
                return r if r.status_code == 200 and r.json()["relay"]["state"] == "running" else None

            body = (await eventually(ready, timeout=30)).json()
            assert body["dead_tasks"] == [] and body["relay"]["lag"] == 0
            assert body["consumer"]["state"] in ("running", "starting") and body["consumer"]["lag"] == 0

            [relay_task] = [t for t in asyncio.all_tasks() if t.get_name() == "relay"]
            relay_task.cancel()  # dies, as a task would on an error nothing caught
            await eventually(lambda: _true(ended), timeout=5)
            r = await client.get("/readyz")
            assert r.status_code == 503
            assert r.json()["checks"]["background_tasks"] is False and r.json()["dead_tasks"] == ["relay"]
            assert (await client.get("/healthz")).status_code == 200  # alive, but not ready
    assert ended == [True], "the process's end is called once"


async def _true(value) -> bool:
    return bool(value)
