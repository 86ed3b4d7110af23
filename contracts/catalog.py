"""Imports every payload module so that the registry knows all event types."""
from contracts import assistance, audit, exit_review, intake, notifier, screening  # noqa: F401
from contracts.base import all_payload_classes, decode_payload, payload_class  # noqa: F401
