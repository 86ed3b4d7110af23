"""Events intake consumes: none yet — intake is the front door and only publishes."""
from runtime.service import EventHandler

HANDLERS: dict[str, EventHandler] = {}
