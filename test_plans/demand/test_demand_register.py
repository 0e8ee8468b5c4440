"""Demand register test: at 10 % and 100 % TA, PF 1, the meter's demand registers over one full
demand interval against the reference standard's average power (bench/standards/demand.toml).

Each point resets every meter's demand (a new interval starts), holds the load for the interval
the meter states in its `demand_interval_s` register, and compares its maximum-demand and
last-interval demand registers with P_ref = dE / dt; the limit is ± % of reading. A meter type
whose register map keeps no demand registers is skipped, naming the registers it lacks.
"""


def test_demand_register(point, position, demand):
    """The maximum and last-interval demand read over comms are within the table's limit of the
    reference's average power over the interval."""
    demand(point, position)
