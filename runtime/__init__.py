"""Shared plumbing of all five services: one of each — settings, database, event store, relay,
consumer with inbox, Kafka, clock, auth, telemetry and the service app factory."""
