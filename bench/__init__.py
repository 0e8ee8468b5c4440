"""The meter certification bench: profiles, roles and safety, clock, metrology, plans, reports."""
