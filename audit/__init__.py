"""The operator's audit tools (`fangpin audit`): verify a service's event store against its hashes
and its signed checkpoints (verify.py); one household's history across the stores (timeline.py), and
its events with their proofs in a bundle checked with no database (bundle.py)."""
