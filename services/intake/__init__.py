"""intake: the household registry and the three clue channels (线索)."""
