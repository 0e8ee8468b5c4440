"""The physical bench: its profile, the clock, and the Bench that energises only within limits."""
