"""Lot acceptance by sampling: a lot of new meters is accepted or rejected on a sample drawn from
it under an approved plan (ANSI/ASQ Z1.9 variables, Z1.4 attributes), the sample's results coming
from the records database like any run's, the plan's tables being lab data with their citations
(bench/standards/sampling/)."""
