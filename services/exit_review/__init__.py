"""exit_review: exit cases, the seven blockers (七不消), look-backs, rollbacks and statistics."""
