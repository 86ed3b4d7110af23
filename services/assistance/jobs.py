"""What assistance does by the clock: every open plan checked again, for the rules that fall due with
time (the first measure's days, the quarter's income record)."""
from __future__ import annotations

from contracts.envelope import Actor
from runtime.eventstore import EventMetadata
from runtime.service import ServiceContext, run_command
from services.assistance import commands, store

SCHEDULER = Actor(kind="system", id="assistance-scheduler", role="scheduler")
PAGE = 500


async def check_open_plans(ctx: ServiceContext) -> None:
    after = None
    while True:
        async with ctx.sessions() as session:
            households = await store.open_plan_ids(session, after, PAGE)
        if households:  # a page in one transaction; a plan changed meanwhile has the page checked again
            await run_command(ctx, EventMetadata(actor=SCHEDULER),
                              lambda uow, page=households: commands.check_again(uow, page))
        if len(households) < PAGE:
            return
        after = households[-1]
