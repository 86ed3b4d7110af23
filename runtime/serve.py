"""Run one service: `python -m runtime.serve intake` (settings from FANGPIN_ variables).

With `FANGPIN_WORKERS` above 1, uvicorn runs that many processes of the service on one port; they
share its database, so the relay, the consumer group and the periodic jobs keep one copy at work.
"""
from __future__ import annotations

import logging
import os
import signal
import sys

import uvicorn
from fastapi import FastAPI

from runtime.app import create_app, load_definition
from runtime.clock import Clock, SimulatedTimeInLogs, SimulationClock, clock_from_settings
from runtime.settings import Settings
from runtime.startup import REFUSED_EXIT_CODE, StartRefused, refuse_unsafe_settings


def _configure_logging(settings: Settings, clock: Clock) -> None:
    # On a simulation clock each line carries the simulated time too, so a rehearsal's log reads by its calendar.
    simulated = isinstance(clock, SimulationClock)
    logging.basicConfig(level=settings.log_level.upper(),
                        format=f"%(asctime)s {'[simulated %(simulated_now)s] ' if simulated else ''}"
                               f"{settings.service}[{os.getpid()}] %(levelname)s %(name)s: %(message)s")
    if simulated:
        for handler in logging.getLogger().handlers:
            handler.addFilter(SimulatedTimeInLogs(clock))


TASK_DIED_EXIT_CODE = 70  # EX_SOFTWARE: a background task died; the supervisor should start the process again
_task_died = False


def end_process() -> None:
    """A background task died: shut down as on SIGTERM (uvicorn runs the lifespan's cleanup) and
    exit with TASK_DIED_EXIT_CODE, so that a supervisor starts the process again (uvicorn's own
    supervisor, with several workers, starts a new worker)."""
    global _task_died
    _task_died = True
    os.kill(os.getpid(), signal.SIGTERM)


def app_from_environment() -> FastAPI:
    """The app factory each worker process calls (settings, the service's name included, from the environment)."""
    settings = Settings()
    clock = clock_from_settings(settings)
    _configure_logging(settings, clock)
    return create_app(load_definition(settings.service), settings, clock, on_task_death=end_process)


SHUTDOWN_GRACE_SECONDS = 5


def serve(service: str, settings: Settings | None = None) -> None:
    settings = settings or Settings(service=service)
    try:
        refuse_unsafe_settings(settings, load_definition(service))
    except StartRefused as refused:
        print(refused, file=sys.stderr)
        sys.exit(REFUSED_EXIT_CODE)
    # Open live streams (notifier's inbox stream) never end by themselves: a stop waits this long for
    # them, then closes them (clients reconnect with Last-Event-ID and miss nothing).
    options = dict(host=settings.http_host, port=settings.http_port, log_level=settings.log_level, access_log=False,
                   timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS)
    if settings.workers > 1:
        os.environ["FANGPIN_SERVICE"] = service
        uvicorn.run("runtime.serve:app_from_environment", factory=True, workers=settings.workers, **options)
    else:
        clock = clock_from_settings(settings)
        _configure_logging(settings, clock)
        uvicorn.run(create_app(load_definition(service), settings, clock, on_task_death=end_process), **options)
    if _task_died:
        sys.exit(TASK_DIED_EXIT_CODE)


if __name__ == "__main__":
    serve(sys.argv[1])
