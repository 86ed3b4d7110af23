"""Events exit_review consumes. It reads screening's topic from the start; the handlers that act on
identified subjects come with its own issue, and until then events are recorded as seen."""
from runtime.service import EventHandler

HANDLERS: dict[str, EventHandler] = {}
