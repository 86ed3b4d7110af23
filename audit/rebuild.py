"""`fangpin audit rebuild`: a service's views rebuilt from its own event store into a scratch schema
of its database, with the projections the service itself runs (services/<name>/projections.py), and
compared with the live tables. The live tables are only read. Mirrored tables (facts of another
service) are rebuilt from the topics instead: `fangpin audit replay`."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from audit.differences import TableComparison, compare_table, last_event_naming
from audit.verify import AuditError
from runtime.app import load_definition
from runtime.bulk import driver_connection
from runtime.projections import rebuild


@dataclass
class RebuildReport:
    service: str
    events: int  # events applied
    upto_position: int | None
    tables: list[TableComparison] = field(default_factory=list)
    scratch_schema: str | None = None  # kept for inspection (--keep)

    @property
    def equal(self) -> bool:
        return all(t.equal for t in self.tables)

    def summary(self) -> str:
        upto = f" up to global position {self.upto_position:,}" if self.upto_position else ""
        tables = ", ".join(f"{t.table} {t.rows_live:,}/{t.rows_rebuilt:,}" for t in self.tables) or "no views"
        verdict = "equal to the live tables" if self.equal else f"{sum(t.different for t in self.tables):,} rows differ"
        kept = f"; the rebuild is kept in schema {self.scratch_schema}" if self.scratch_schema else ""
        return f"{self.service}: {self.events:,} events{upto} rebuilt: {verdict} (rows live/rebuilt: {tables}){kept}"


def _engine_url(url: str) -> str:
    return url if "+asyncpg" in url else url.replace("postgresql://", "postgresql+asyncpg://", 1)


async def rebuild_and_compare(url: str, service: str, upto_position: int | None = None, keep: bool = False,
                              progress: Callable[[int, int], None] | None = None) -> RebuildReport:
    """Rebuild `service`'s projected tables from its store (up to `upto_position`) into a new scratch
    schema and compare them with the live ones; the scratch schema is dropped unless `keep`."""
    projections = load_definition(service).projections
    engine = create_async_engine(_engine_url(url), hide_parameters=True)
    scratch = f"audit_rebuild_{secrets.token_hex(4)}"
    try:
        async with engine.connect() as probe:
            last = await probe.scalar(sa.text("select coalesce(max(global_position), 0) from events"))
            total = await probe.scalar(sa.text("select count(*) from events where global_position <= :upto"),
                                       {"upto": upto_position or last})
    except Exception as exc:
        await engine.dispose()
        raise AuditError(f"{service}: its database does not answer ({type(exc).__name__})") from None
    try:
        if upto_position is not None and not 1 <= upto_position <= last:
            raise AuditError(f"{service}: no global position {upto_position:,}; its store holds positions 1 to {last:,}")
        report = RebuildReport(service, 0, upto_position)
        if not projections.tables:
            return report
        async with AsyncSession(engine) as session, session.begin():
            await session.execute(sa.text(f'create schema "{scratch}"'))
            for table in projections.tables:
                await session.execute(sa.text(
                    f'create table "{scratch}"."{table.name}" (like public."{table.name}" including all)'))
            # The projections write unqualified names: here they find the scratch tables first, the events in public.
            await session.execute(sa.text(f'set local search_path to "{scratch}", public'))
            report.events = await rebuild(session, projections, upto_position,
                                          (lambda done: progress(done, total)) if progress else None)
            connection = await driver_connection(session)
            for table in projections.tables:
                compared = await compare_table(connection, "public", connection, scratch, table)
                compared.shown = [replace(d, last_event=await last_event_naming(connection, d.key, upto_position))
                                  for d in compared.shown]
                report.tables.append(compared)
            if keep:
                report.scratch_schema = scratch
            else:
                await session.execute(sa.text(f'drop schema "{scratch}" cascade'))
        return report
    finally:
        await engine.dispose()
