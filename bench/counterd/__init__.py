"""`bench counterd`: the pulse counter board (instruments/PULSE_COUNTER.md) on a Linux board's GPIO
lines, through libgpiod v2. Its gate logic (``gate``) and command set (``device``) are the ones the
simulated board runs."""
