"""The live board panel: a local web page fed by the run's event stream (server-sent events)."""
