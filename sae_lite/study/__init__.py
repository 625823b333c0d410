"""The experiments: profiles, the compared methods, one run as the command line makes it (pipeline),
the results cache, grids of runs, the weight rule, the statistics and claims, the chapters' shared
grids, the paper's reproduction and what it would cost.

Import direction inside: profiles <- methods, pipeline <- results <- runner <- weights <- stats <- claims <- grids,
paper <- reproduce, cost.
"""
