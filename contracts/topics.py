"""Topic names: one topic per producing service, keyed by household id."""

SERVICES = ("intake", "screening", "assistance", "exit_review", "notifier")


def events_topic(service: str, prefix: str = "") -> str:
    return f"{prefix}fangpin.{service}.events"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"
