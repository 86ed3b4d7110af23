"""Events exit_review consumes. What it keeps of them is the evidence its blockers read, written by
the mirrors of projections.py in the transaction that takes each event; no consumed event yet asks
exit_review to decide anything (look-backs and rollbacks, its issue's next part, will)."""
from runtime.service import EventHandler

HANDLERS: dict[str, EventHandler] = {}
