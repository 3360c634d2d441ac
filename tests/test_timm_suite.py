"""timm's own tests/test_models.py passes on the names we register (scripts/timm_model_tests.py).

The CI run takes one name of each kind (CI_NAMES: every tokenizer family, the CIFAR and ImageNet-size shapes, the
CNN); VITBENCH_TIMM_ALL=1 runs every registered name (about 20 minutes on 2 cores), as does the script itself.
timm's source distribution comes from the cache or, unless VITBENCH_OFFLINE=1, from the package index; without
either the test is skipped with the reason.
"""
import importlib.util
import os
import subprocess

import pytest

from .conftest import REPO

spec = importlib.util.spec_from_file_location("timm_model_tests", REPO / "scripts" / "timm_model_tests.py")
suite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(suite)


def sdist_or_skip():
    version = suite.timm_version()
    cached = suite.CACHE / f"timm-{version}.tar.gz"
    if cached.is_file():
        return cached
    if os.environ.get("VITBENCH_OFFLINE") == "1":
        pytest.skip(f"timm's sdist is not cached at {cached} and VITBENCH_OFFLINE=1 forbids downloading it")
    try:
        return suite.fetch_sdist(version)
    except subprocess.CalledProcessError as e:
        last = (e.stderr or "").strip().splitlines()[-1:] or ["no output"]
        pytest.skip(f"timm {version}'s sdist could not be downloaded (offline?): {last[0]}")


def test_timm_sdist_has_the_lists_we_register_in(tmp_path):
    """Cheap, so not slow: the file's shape that the runner relies on (one NON_STD_FILTERS, one FEAT_INTER_FILTERS)."""
    sdist = suite.CACHE / f"timm-{suite.timm_version()}.tar.gz"
    if not sdist.is_file():
        pytest.skip(f"timm's sdist is not cached at {sdist}; the slow test below fetches it")
    suite.extract_tests(sdist, suite.timm_version(), tmp_path)
    registered = (tmp_path / "pass2" / "test_models.py").read_text()
    assert "NON_STD_FILTERS = ['t2t_vit_*', 'vb_vit_*', 'vit_*', " in registered
    assert "FEAT_INTER_FILTERS = ['registry', 'cnn', " in registered


CI_NAMES = ["t2t_vit_7", "t2t_vit_t_14", "t2t_vit_lite_tiny", "vit_lite_tiny", "vb_vit_tiny_patch16_224",
            "resnet_cifar_tiny"]  # the six names the timm run was first reported on


@pytest.mark.slow
def test_timms_model_tests_pass_on_our_names(capsys):
    sdist = sdist_or_skip()
    names = suite.our_names() if os.environ.get("VITBENCH_TIMM_ALL") == "1" else CI_NAMES
    assert set(CI_NAMES) <= set(suite.our_names())
    status, summaries = suite.run(sdist, names)
    text = capsys.readouterr().out
    assert status == 0, "\n".join(line for line in text.splitlines() if line.startswith(("FAILED", "ERROR")))
    assert all(" passed" in line and "failed" not in line for _, line in summaries), summaries
