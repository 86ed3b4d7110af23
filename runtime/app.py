"""The one app factory: every service is a FastAPI app built here from its ServiceDefinition."""
from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import zlib
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable
from urllib.parse import urlsplit

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

import contracts.catalog  # noqa: F401  every event type is known, whichever service's events a service decodes
from runtime import codes, dead_letters
from runtime.clock import Clock, RequestClockMiddleware, SimulationClock, clock_from_settings, describe
from runtime.checkpoints import CheckpointWriter
from runtime.consumer import EventConsumer
from runtime.db import database_answers, make_engine, make_sessions, migrate
from runtime.eventstore import ConcurrencyConflict
from runtime.exposure import add_docs_and_metrics, docs_urls
from runtime.idempotency import IdempotencyMiddleware
from runtime.limits import BodyLimitMiddleware, streamed_paths
from runtime.liveness import ProcessLease
from runtime.problems import Problem, install_problem_handlers, problem_response
from runtime.relay import OutboxRelay
from runtime.service import ServiceContext, ServiceDefinition
from runtime.settings import Settings, get_settings
from runtime.startup import refuse_unsafe_settings
from runtime.tasks import run_periodically
from runtime.telemetry import TracingAndMetricsMiddleware, setup_tracing

log = logging.getLogger(__name__)
YOUNG_GENERATION = 50_000  # objects allocated between collections of the youngest generation
FULL_COLLECTION_SECONDS = 5.0  # and a full collection this often, so that cyclic garbage cannot pile up


async def collect_all_garbage() -> None:
    gc.collect()


def load_definition(service: str) -> ServiceDefinition:
    return importlib.import_module(f"services.{service}.app").SERVICE


def create_app(
    definition: ServiceDefinition,
    settings: Settings | None = None,
    clock: Clock | None = None,
    consumer_group: str | None = None,
    on_task_death: Callable[[], None] | None = None,
) -> FastAPI:
    """`on_task_death` is called when a background task ends while the service runs (runtime.serve
    passes one that ends the process, for its supervisor to start it again); either way /readyz
    then answers 503."""
    settings = settings or get_settings()
    refuse_unsafe_settings(settings, definition)
    clock = clock or clock_from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setup_tracing(definition.name, otlp_endpoint=settings.otlp_endpoint)
        engine = make_engine(settings)
        await migrate(engine, definition.name)
        ctx = ServiceContext(definition.name, settings, engine, make_sessions(engine), clock, definition.projections)
        if isinstance(clock, SimulationClock):
            log.warning("%s: SIMULATION CLOCK (training or rehearsal, never real records): now is %s, %gx the wall "
                        "clock, from %s at wall-clock %s", definition.name, clock.local_now().isoformat(timespec="seconds"),
                        clock.speed, clock.start.isoformat(), clock.anchor.isoformat(timespec="seconds"))
        app.state.context = ctx
        app.state.lease = ProcessLease(engine)  # tells other processes this one is alive (idempotency claims)
        await app.state.lease.start()
        app.state.relay = OutboxRelay(ctx)
        app.state.consumer = EventConsumer(ctx, definition.consumes, definition.handlers, consumer_group)
        stop = asyncio.Event()
        jobs = {"relay": app.state.relay.run(stop), "consumer": app.state.consumer.run(stop),
                "process lease": app.state.lease.keep(stop)}
        for every, job in definition.periodic:
            name = getattr(job, "__name__", "job")
            jobs[name] = run_periodically(stop, getattr(settings, every) if isinstance(every, str) else every,
                                          (lambda job=job: one_copy_at_a_time(ctx, job)), name)
        if settings.checkpoint_interval_seconds > 0:  # signed checkpoints of the store (runtime.checkpoints)
            writer = CheckpointWriter(ctx)
            jobs["checkpoints"] = run_periodically(stop, settings.checkpoint_interval_seconds,
                                                   lambda: one_copy_at_a_time(ctx, writer.write), "checkpoints")
        jobs["garbage collection"] = run_periodically(stop, FULL_COLLECTION_SECONDS, collect_all_garbage, "garbage collection")
        app.state.dead_tasks = []
        tasks = [asyncio.create_task(job, name=name) for name, job in jobs.items()]
        for task in tasks:
            task.add_done_callback(lambda task: _task_ended(task, stop, app, definition.name, on_task_death))
        # What start-up built lives as long as the process: keep the collector from scanning it
        # again at every full collection (at bulk rates those scans cost as much as the work).
        gc.freeze()
        # A bulk chunk allocates tens of thousands of short-lived containers; with the default young
        # generation (700) the collector runs every few rows and walks the chunk's live rows each time.
        # With a larger one, full collections come too seldom by themselves: a periodic one bounds
        # what reference cycles hold (a chunk's rows, a relay reader's fetched records).
        gc.set_threshold(YOUNG_GENERATION, 10, 10)
        log.info("%s: ready (database migrated, relay and consumer started)", definition.name)
        try:
            yield
        finally:
            stop.set()
            done, pending = await asyncio.wait(tasks, timeout=15)
            for task in pending:
                task.cancel()
            for task in done:
                if not task.cancelled() and task.exception():
                    log.error("%s: background task ended with %r", definition.name, task.exception())
            await app.state.lease.stop()
            await engine.dispose()

    app = FastAPI(
        title=f"Fangpin {definition.name}",
        description=definition.description,
        version="1",
        lifespan=lifespan,
        **docs_urls(settings),
    )
    install_problem_handlers(app, definition.refusal_statuses)

    @app.exception_handler(ConcurrencyConflict)
    async def _conflict(request: Request, exc: ConcurrencyConflict):
        return problem_response(Problem(409, "Concurrent change", f"{exc}; retry the request", code="concurrent_change"),
                                request)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict:
        return {"status": "ok", "service": definition.name, "clock": describe(clock)}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request):
        """Ready when the database answers, the broker accepts connections and no background task
        has died; the relay's and the consumer's state and lag are reported either way."""
        state = request.app.state
        ctx: ServiceContext = state.context
        checks = {"database": await database_answers(ctx.engine), "broker": await _broker_ok(settings.kafka_bootstrap),
                  "background_tasks": not state.dead_tasks}
        body = {
            "service": definition.name,
            "status": "ready" if all(checks.values()) else "not ready",
            "checks": checks,
            "dead_tasks": state.dead_tasks,
            "relay": {**state.relay.health.view(), "lag": await state.relay.lag()},
            "consumer": {**state.consumer.health.view(), "lag": state.consumer.lag},
        }
        return JSONResponse(body, status_code=200 if all(checks.values()) else 503)

    add_docs_and_metrics(app, settings)

    for router in [*definition.routers, dead_letters.router, codes.router]:
        app.include_router(router)
    app.add_middleware(IdempotencyMiddleware, state_holder=app)
    # Outside IdempotencyMiddleware, which reads whole bodies; inside tracing, so a 413 is counted.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes, streamed=streamed_paths(app))
    app.add_middleware(TracingAndMetricsMiddleware, service=definition.name)
    app.add_middleware(RequestClockMiddleware, clock=clock)
    # Outermost: the pages the notifier serves at public_base_url call every service's API from the
    # browser; a preflight is answered before any other work, and every answer (problems, 413s
    # included) carries the headers the page needs to read it.
    app.add_middleware(CORSMiddleware, allow_origins=allowed_origins(settings), allow_methods=CORS_METHODS,
                       allow_headers=CORS_HEADERS, expose_headers=CORS_EXPOSED_HEADERS, max_age=600)
    return app


CORS_METHODS = ["GET", "POST", "PUT"]
CORS_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"]
CORS_EXPOSED_HEADERS = ["Link", "Location", "Retry-After", "Idempotent-Replayed", "Content-Disposition"]


def allowed_origins(settings: Settings) -> list[str]:
    """The origin of the public address and the extra ones configured. A browser's Origin header
    leaves out the scheme's default port, so the origin does too."""
    public = urlsplit(settings.public_base_url)
    host = public.netloc.rpartition("@")[2].lower()
    if public.port == {"http": 80, "https": 443}[public.scheme]:
        host = host.rsplit(":", 1)[0]
    return [f"{public.scheme}://{host}", *settings.cors_origins]


async def one_copy_at_a_time(ctx: ServiceContext, job) -> None:
    """Run a periodic job unless another process of this service is running it (several workers or
    replicas share one database): a session advisory lock named after the job."""
    key = zlib.crc32(f"{ctx.name}:{job.__module__}.{job.__qualname__}".encode())
    async with ctx.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        if not await conn.scalar(sa.text("select pg_try_advisory_lock(:key)"), {"key": key}):
            return
        try:
            await job(ctx)
        finally:
            await conn.scalar(sa.text("select pg_advisory_unlock(:key)"), {"key": key})


def _task_ended(task: asyncio.Task, stop: asyncio.Event, app: FastAPI, service: str,
                on_task_death: Callable[[], None] | None) -> None:
    """No background task may end while the service runs: one that does is reported loudly,
    /readyz fails, and the process is ended for its supervisor to start again."""
    if stop.is_set():
        return
    error = None if task.cancelled() else task.exception()
    app.state.dead_tasks.append(task.get_name())
    log.critical("%s: background task %r ended while the service runs (%s); the service is not ready%s",
                 service, task.get_name(), "cancelled" if task.cancelled() else repr(error) if error else "returned",
                 " and the process ends" if on_task_death else "", exc_info=error)
    if on_task_death is not None:
        on_task_death()


async def _broker_ok(bootstrap: str) -> bool:
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout=2)
            writer.close()
            return True
        except (OSError, asyncio.TimeoutError, ValueError):
            continue
    return False
