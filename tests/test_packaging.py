"""Project metadata: pyproject.toml, LICENSE and CITATION.cff agree; the models need only torch, timm and
safetensors, and every other package is a declared extra."""
import ast
import re
import subprocess
import sys
import tomllib
from importlib import metadata

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
    assert any(dep.startswith("filelock>=") for dep in project["optional-dependencies"]["bench"])


# ----------------------------------------------------------------------------- dependencies and extras

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
MODEL_DEPENDENCIES = {"torch", "timm", "safetensors"}
EXTRA_MODULES = ["fvcore", "pandas", "matplotlib", "scipy", "tensorboard", "wandb", "tabulate", "tomli_w", "submitit",
                 "pytest", "pytest_benchmark", "pygal", "hypothesis", "iopath", "bench"]  # not tqdm, filelock: core


def dist_name(requirement):
    """A requirement's normalised distribution name: `pytest-benchmark[histogram]>=4.0` -> pytest_benchmark."""
    return re.split(r"[\s\[<>=!~;(]", requirement.strip(), maxsplit=1)[0].lower().replace("-", "_").replace(".", "_")


def closure(names):
    """`names` and every distribution they require (their extras' requirements left out), installed ones only."""
    seen, todo = set(), [dist_name(name) for name in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [dist_name(r) for r in requires if "extra ==" not in r]
    return seen


def third_party_imports(folder):
    """Top-level modules imported anywhere under `folder` (module level or in a function) that are not the standard
    library's or this repository's."""
    found = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"models", "bench", "tests"}


def distributions_of(modules):
    owners = metadata.packages_distributions()
    return {module: {dist_name(d) for d in owners.get(module, [module])} for module in modules}


def test_the_models_need_only_torch_timm_and_safetensors():
    assert {dist_name(r) for r in PROJECT["dependencies"]} == MODEL_DEPENDENCIES
    allowed = closure(MODEL_DEPENDENCIES)  # numpy and pillow come with timm's torchvision
    for module, dists in distributions_of(third_party_imports(REPO / "models")).items():
        assert dists & allowed, f"models/ imports {module} ({dists}), which torch, timm and safetensors do not bring"


def test_every_extra_is_declared_and_the_harness_imports_only_declared_packages():
    extras = PROJECT["optional-dependencies"]
    assert {"bench", "report", "tensorboard", "wandb", "test", "all"} <= set(extras)
    named = {extra: {dist_name(r) for r in requirements} for extra, requirements in extras.items()}
    assert "fvcore" in named["bench"] and {"matplotlib", "scipy"} <= named["report"]
    assert named["tensorboard"] == {"tensorboard"} and named["wandb"] == {"wandb"}
    assert "pytest-benchmark[histogram]>=4.0" in extras["bench"]  # --benchmark-histogram's pygal comes with it
    assert extras["all"] == ["vitbench[bench,report,tensorboard,wandb,test]"]  # every extra
    assert set(re.findall(r"\[(.*)\]", extras["all"][0])[0].split(",")) == set(extras) - {"all"}
    assert '-e "$root[all]"' in (REPO / "scripts" / "venv.sh").read_text()  # the README's two commands: everything
    declared = closure(MODEL_DEPENDENCIES | {dist_name(r) for rs in extras.values() for r in rs if "vitbench" not in r})
    for folder in ("bench", "tests", "scripts"):
        for module, dists in distributions_of(third_party_imports(REPO / folder)).items():
            assert dists & declared, f"{folder}/ imports {module} ({dists}), which no dependency or extra declares"


BLOCKED_IMPORTS = """
import importlib.abc, importlib.machinery, sys
BLOCKED = set(sys.argv[1].split(","))
tried = []
class Block(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    # finds every blocked module first, with no origin (so a probe such as torch's find_spec skips it), and
    # refuses to load it as a missing package is refused: ModuleNotFoundError
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return importlib.machinery.ModuleSpec(name, self)
    def create_module(self, spec):
        tried.append(spec.name)
        raise ModuleNotFoundError(f"No module named {spec.name!r} (blocked)", name=spec.name)
    def exec_module(self, module):
        pass
sys.meta_path.insert(0, Block())

import timm, torch
import models
import models.export, models.timm_script  # weights out, and the entry for timm's scripts
model = models.create_model("t2t_vit_7", img_size=32, num_classes=10).eval()
assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
vit = timm.create_model("vb_vit_tiny_patch16_224", img_size=32, patch_size=8, depth=1, num_classes=3)
models.save_checkpoint(vit, sys.argv[2] + "/ours.pth")
models.export.export_checkpoint(sys.argv[2] + "/ours.pth", sys.argv[2] + "/ours.safetensors", layout="ours")
again = models.create_model("vb_vit_tiny_patch16_224", img_size=32, patch_size=8, depth=1, num_classes=3)
models.load_checkpoint(again, sys.argv[2] + "/ours.safetensors")
assert all(torch.equal(a, b) for a, b in zip(vit.state_dict().values(), again.state_dict().values()))
print("ok", sorted(set(n.split(".")[0] for n in tried)))
"""


def test_import_models_builds_and_round_trips_with_every_extra_blocked(tmp_path):
    """`import models` with fvcore, pandas, matplotlib, scipy, TensorBoard, W&B, the test tools and bench/ made
    unimportable (a meta-path finder that refuses them): a model builds, runs, and its weights go out and back in."""
    brought = closure(MODEL_DEPENDENCIES)
    for module, dists in distributions_of(EXTRA_MODULES[:-1]).items():
        assert not dists & brought, f"{module} comes with torch, timm or safetensors: blocking it would be unfair"
    done = subprocess.run([sys.executable, "-c", BLOCKED_IMPORTS, ",".join(EXTRA_MODULES), str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok"), done.stdout
