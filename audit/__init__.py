"""The operator's audit tools (`fangpin audit`): verify a service's event store against its hashes
and its signed checkpoints (verify.py)."""
