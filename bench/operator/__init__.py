"""The operator's view of a run: one stream of events (point started, gate progress, result, safety,
prompts) that feeds the browser panel, the terminal display and the run's event log alike."""
