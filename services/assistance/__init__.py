"""assistance: assistance plans, helpers, measures, incomes and plan gaps (帮扶)."""
