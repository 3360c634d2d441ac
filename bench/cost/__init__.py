"""The cost harness: MACs and parameters (three counters), timing, memory, profile, sweeps and the
published table. Imports `models` and `bench.provenance` only.
"""
