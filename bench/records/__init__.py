"""What a run leaves: the record, the records database, baselines, signatures, plots, documents."""
