"""The five services. Each has the same shape: domain (pure decisions), store (tables, queries),
api (HTTP), handlers (consumed events), app (wiring), migrations (its own schema history)."""
