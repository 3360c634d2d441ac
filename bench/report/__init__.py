"""Every table and plot: family names and colours, the cost, benchmark, training and study tables and
figures, and `vitbench report`. Imports `models`, `bench.cost`, `bench.accuracy` and `bench.provenance`.
"""
