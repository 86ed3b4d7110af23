"""Pure decisions of exit_review: the seven blockers 七不消 on the evidence, the exit ladder, and the
kinds of refusal of their rules."""
