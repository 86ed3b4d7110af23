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
        for household_id in households:
            await run_command(ctx, EventMetadata(actor=SCHEDULER),
                              lambda uow, household_id=household_id: commands.check_again(uow, household_id))
        if len(households) < PAGE:
            return
        after = households[-1]
