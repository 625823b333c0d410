"""The experiments: profiles, the compared methods, the results cache, grids of runs, the weight
rule, the statistics and claims, the chapters' shared grids, the paper's reproduction and what it
would cost.

Import direction inside: profiles <- methods, results <- runner <- weights <- stats <- claims <- grids,
paper <- reproduce, cost.
"""
