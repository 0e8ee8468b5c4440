"""Pure metrology: uncertainty budgets and decisions, stimuli, harmonics, reference conditions, meter forms."""
