"""The planner: pure DF arithmetic and the compiler from Film to Plan (no torch, ever)."""
