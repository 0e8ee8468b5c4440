"""Vendor drivers: one module per instrument family."""
