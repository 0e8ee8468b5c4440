"""What is run: the C12.20 table, the payload point, the commissioning audit and firmware checks."""
