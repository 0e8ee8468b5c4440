"""Protocol servers below everything that serves a device: the SCPI device engine (headers, path
rules, error queue, link faults) and its TCP and pty servers. The simulator's instruments
and the counter daemon both serve through them, so the daemon never loads the simulator."""
