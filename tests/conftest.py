from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"  # optional reference facts beside the repository; tests never need them
CIFAR10_SAMPLE = REPO / "tests" / "data" / "cifar10-sample"  # 30 train + 10 test real CIFAR-10 JPEGs per class


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _decoded_cache(tmp_path_factory):
    """Decoded-image caches of the memory data path and peak FLOP/s calibrations go to a temporary folder, never
    ~/.cache: for the whole session, so module-scoped fixtures (which run before any function-scoped one) and the
    CLIs they start write there too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VITBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "decoded-cache"))
        patch.setenv("VITBENCH_PEAK_CACHE", str(tmp_path_factory.getbasetemp() / "peak.json"))  # GEMM calibrations
        yield
