"""Harnesses that measure the models, in layers that only import downwards:

    models  <-  bench.cost  <-  bench.accuracy  <-  bench.report  <-  bench.cli, the pytest-benchmark suite

`bench/settings.py` and `bench/configs.py` hold one typed config per job (the CLI's flags are generated
from them, without importing torch). `bench/` itself also holds what `pytest bench --benchmark-only`
needs (conftest, `bench_*.py`, `suite.py`, the reference-style baseline), the CLI, provenance, the
output-folder policy, the one model factory both harnesses build with (`factory.py`: ours or any timm
model), the allocator policy timings run under and the child-process rules
(`processes.py`: children die with their parent, SIGTERM unwinds like Ctrl-C); `tests/test_layers.py`
enforces the rule.
"""
