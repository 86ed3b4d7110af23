"""The checkpoint writer: a background task of every service (runtime.app) that signs, every
`checkpoint_interval_seconds`, the Merkle root of its store's events (runtime.integrity) as a
CheckpointSigned event in the stream `checkpoints` of the same store. Stored like any event, the
checkpoint is published on the service's topic by the relay and becomes a leaf of the next tree.

Only final events go into a tree: a position handed out to a transaction still running may yet be
filled, and a tree that stepped over it would never match the store again. The tree goes on from
the frontier stored in the last checkpoint, so a round reads only the events since (in pages), and
a round that finds no event but checkpoints signs nothing (no checkpoint storm). Two processes of
one service race safely: the append expects the stream where the round found it, and the loser
of a ConcurrencyConflict leaves this round to the winner.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from contracts.audit import CheckpointSigned
from contracts.base import DumpedPayload
from contracts.envelope import Actor, utc_spelling
from runtime.bulk import driver_connection
from runtime.eventstore import ConcurrencyConflict, EventMetadata, NewEvent
from runtime.integrity import (
    CHECKPOINTS_STREAM, MerkleFrontier, checkpoint_frontier, checkpoint_problems, event_leaf, next_checkpoint,
    signing_key,
)
from runtime.service import ServiceContext, unit_of_work

log = logging.getLogger(__name__)
PAGE_EVENTS = 10_000
FINALITY_WAIT_SECONDS = 1.0  # a round waits this long for older transactions to end, then tries again next round

# Every position handed out so far (committed, running or rolled back); then a transaction id of
# our own, newer than every one taken before: a position's holder took its id before its position
# (EventStore appends take it first). Two statements, in this order, each its own transaction (see
# Horizon). Not the snapshot's xmax: that is the newest *finished* transaction's id + 1, and a
# transaction newer than it runs unlisted.
_LAST_POSITION_HANDED_OUT = sa.text(
    "select coalesce(pg_sequence_last_value(pg_get_serial_sequence('events', 'global_position')), 0)")
_NEW_TRANSACTION_ID = sa.text("select pg_current_xact_id()::text::bigint")
# The oldest transaction running (once ours has ended, every older one running is listed in the snapshot).
_OLDEST_RUNNING = sa.text("select pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


@dataclass(frozen=True)
class Horizon:
    """Every position up to `upto` was handed out to a transaction whose id is below `mark` (an id
    taken, and finished, after `upto` was read). Once no transaction older than `mark` runs, each of
    those positions holds its event for good or never will: the events up to `upto` are final.

    (EventStore.read_all's rule, "below the oldest transaction running", is not enough here: a
    transaction that took its id early, e.g. with a table write, may take a position after a
    younger one that is still running, commit, and be read while the younger one's lower position
    is still empty.)"""

    upto: int
    mark: int


@dataclass(frozen=True)
class LastCheckpoint:
    stream_position: int
    checkpoint: dict[str, Any]


async def last_checkpoint(connection) -> LastCheckpoint | None:
    """The newest checkpoint of the store (an asyncpg connection)."""
    row = await connection.fetchrow(
        "select stream_position, payload::text as payload from events where stream_id = $1"
        " order by stream_position desc limit 1", CHECKPOINTS_STREAM)
    return LastCheckpoint(row["stream_position"], orjson.loads(row["payload"])) if row else None


class CheckpointWriter:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.key = signing_key(ctx.settings.audit_signing_key)
        self.key_id = ctx.settings.audit_signing_key_id
        self.pending: Horizon | None = None
        self._refusal_said: str | None = None

    async def write(self, ctx: ServiceContext | None = None) -> dict[str, Any] | None:
        """One round: the checkpoint signed and appended, or None (nothing new, events not final
        yet, or another process of the service appended first). `ctx` is the job's argument
        (runtime.app.one_copy_at_a_time); the writer's own is the same."""
        horizon = await self._final_horizon()
        if horizon is None:
            return None
        async with self.ctx.sessions() as session, session.begin():
            connection = await driver_connection(session)
            last = await last_checkpoint(connection)
            frontier = self._frontier_of(last)
            if frontier is None:
                return None
            after = last.checkpoint["upto_position"] if last else 0
            if horizon.upto <= after:
                return None
            news = False  # an event other than a checkpoint: without one, nothing to sign
            while after < horizon.upto:
                rows = await connection.fetch(
                    "select global_position, event_type, hash from events where global_position > $1"
                    " and global_position <= $2 order by global_position limit $3", after, horizon.upto, PAGE_EVENTS)
                if not rows:
                    break
                for position, event_type, event_hash in rows:
                    try:
                        frontier.append(event_leaf(position, event_hash))
                    except ValueError:
                        return self._refuse(f"the event at global position {position} has a malformed hash")
                    news = news or event_type != CheckpointSigned.event_type
                after = rows[-1][0]
        if not news:
            return None
        checkpoint = next_checkpoint(last.checkpoint if last else None, frontier, horizon.upto,
                                     service=self.ctx.name, signed_at=utc_spelling(self.ctx.clock.now()),
                                     key_id=self.key_id, private_key=self.key)
        meta = EventMetadata(actor=Actor(kind="system", id=f"fangpin-{self.ctx.name}", role="service"))
        try:
            async with unit_of_work(self.ctx, meta) as uow:
                await uow.append(CHECKPOINTS_STREAM, last.stream_position if last else 0,
                                 [NewEvent(DumpedPayload(CheckpointSigned, checkpoint))])
        except ConcurrencyConflict:
            return None  # another process of this service signed this round
        return checkpoint

    async def _final_horizon(self) -> Horizon | None:
        """The horizon taken now (or the one a round before could not wait out), once final."""
        loop = asyncio.get_running_loop()
        async with self.ctx.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")  # a snapshot per statement
            if self.pending is None:
                upto = await conn.scalar(_LAST_POSITION_HANDED_OUT)
                self.pending = Horizon(upto, await conn.scalar(_NEW_TRANSACTION_ID))
            deadline = loop.time() + FINALITY_WAIT_SECONDS
            while await conn.scalar(_OLDEST_RUNNING) < self.pending.mark:
                if loop.time() > deadline:
                    return None  # a long transaction: the same horizon next round
                await asyncio.sleep(0.05)
        horizon, self.pending = self.pending, None
        return horizon

    def _frontier_of(self, last: LastCheckpoint | None) -> MerkleFrontier | None:
        """The tree to go on from: the last checkpoint's, if it is one this service signed (never
        sign on top of a checkpoint that was forged or altered: `fangpin audit verify` says which)."""
        if last is None:
            return MerkleFrontier()
        checkpoint = last.checkpoint
        if not isinstance(checkpoint, dict):
            return self._refuse("the last checkpoint's payload is not a checkpoint")
        problems = checkpoint_problems(checkpoint, self.key.public_key())
        if checkpoint.get("key_id") != self.key_id:  # signed before a key rotation: its signature is not ours to check
            problems = [p for p in problems if "signature" not in p]
        if problems:
            return self._refuse(f"the last checkpoint, {checkpoint.get('sequence')}: {'; '.join(problems)}")
        self._refusal_said = None
        return checkpoint_frontier(checkpoint)

    def _refuse(self, why: str) -> None:
        """Sign nothing on top of a store that was tampered with, and say so (once for each reason)."""
        if why != self._refusal_said:
            self._refusal_said = why
            log.error("%s: no checkpoint is signed while %s. Run `fangpin audit verify --service %s`.",
                      self.ctx.name, why, self.ctx.name)
