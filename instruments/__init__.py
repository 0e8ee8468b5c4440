"""Instrument drivers: one module per kind of instrument, each speaking its real protocol."""
