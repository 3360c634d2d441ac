"""`vitbench list` reads bench/cost/model_sizes.json instead of building models; the table must be what the
models are, and list must not import torch."""
import json
import subprocess
import sys

from bench.cost.sizes import SIZE_TABLE, model_rows
from tests.conftest import REPO


def test_the_size_table_is_the_models():
    assert json.loads(SIZE_TABLE.read_text()) == model_rows(), (
        "bench/cost/model_sizes.json is stale: run `python -m bench.cost.sizes` and commit it")


def test_list_imports_no_torch():
    code = ("import sys\nfrom bench.cli import main\nmain(['list', 't2t_vit_1*'])\n"
            "print([m for m in ('torch', 'timm', 'fvcore', 'pandas') if m in sys.modules])")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert run.stdout.strip().splitlines()[-1] == "[]"
    assert "t2t_vit_14" in run.stdout and "21545550" in run.stdout.replace(",", "")
