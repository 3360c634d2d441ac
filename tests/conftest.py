import csv
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PUBLISHED_CSV = REPO / "bench" / "published.csv"


def published_rows():
    with open(PUBLISHED_CSV) as f:
        return list(csv.DictReader(f))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
