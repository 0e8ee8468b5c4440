"""How a point is measured on the whole board: gating, pulse counting, results, the runner."""
