"""The accuracy harness: data folders and subsets, the model factory, distributed helpers, training,
evaluation and the from-scratch study's runs. Imports `models`, `bench.cost` and `bench.provenance`.
"""
