"""The simulated bench: one world model behind real SCPI, Modbus TCP and serial servers."""
from bench.sim.simbench import SimulatedBench, board_path

__all__ = ["SimulatedBench", "board_path"]
