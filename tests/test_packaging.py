"""Project metadata: pyproject.toml, LICENSE and CITATION.cff agree."""
import tomllib

import yaml

from tests.conftest import REPO


def test_citation_license_and_pyproject_agree():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["version"] == project["version"]
    assert citation["license"] == "Apache-2.0" and citation["authors"] == [{"name": "the vitbench authors"}]
    assert {ref["title"] for ref in citation["references"]} >= {
        "Tokens-to-Token ViT: Training Vision Transformers from Scratch on ImageNet", "PyTorch Image Models"}
    license_text = (REPO / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in license_text
    assert "Copyright 2026 the vitbench authors" in license_text
    assert project["requires-python"] == ">=3.11"
    assert any(dep.startswith("filelock>=") for dep in project["dependencies"])
