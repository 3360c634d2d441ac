from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _decoded_cache(tmp_path_factory, monkeypatch):
    """Decoded-image caches of the memory data path go to a temporary folder, never ~/.cache."""
    monkeypatch.setenv("VITBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "decoded-cache"))
