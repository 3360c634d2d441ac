"""Run timm's own tests/test_models.py, from the source distribution of the installed timm, on every name we register.

    .venv/bin/python scripts/timm_model_tests.py [--sdist PATH] [--names PATTERN ...] [-- PYTEST ARGS]

timm's wheel has no tests/; its sdist on the package index does. The sdist is read from --sdist, else from the
cache (~/.cache/vitbench/timm-sdist), else downloaded there with `pip download --no-deps --no-binary :all:`.
Nothing of timm's is kept in this repository: test_models.py is copied into a temporary folder (outside any
package, so `import timm` is the installed timm) and run as timm's CI runs it (GITHUB_ACTIONS=1, which also
leaves out its network-only tests), with this file loaded as a pytest plugin that imports `models` so our
names register before the file lists models.

What is left out, and why (each printed with the counts):
- TorchScript (`-m "not torchscript"`): timm's CI runs it as its own job. Our forward checks its input in
  Python (a torch.fx leaf function) and the Performer switches autocast off; neither compiles in TorchScript.
- `test_model_default_cfgs` on our transformers: that test is for models whose forward_features is a spatial
  (B, C, H, W) map; timm sends every ViT-like family (`vit_*`, `deit*`, ...) to `test_model_default_cfgs_non_std`
  by name instead. Pass 2 does the same for ours: a copy of the file with our transformer name patterns added
  to NON_STD_FILTERS and our modules to FEAT_INTER_FILTERS (exactly the lines a timm PR adding these models
  would add), running the non-standard cfg test and the forward_intermediates tests on them.
"""
import argparse
import fnmatch
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vitbench" / "timm-sdist"
TRANSFORMERS = ["t2t_vit_*", "vb_vit_*", "vit_*"]  # our ViT-like names; timm already lists vit_* as non-standard
OUR_MODULES = ["registry", "cnn"]  # the modules of our entrypoints (models.registry, models.cnn), as timm names them
PASS2_TESTS = "test_model_default_cfgs_non_std or test_model_forward_intermediates"
EXCLUDED = {"test_model_default_cfgs": TRANSFORMERS}  # test function -> our names it leaves to pass 2


def timm_version():
    import timm

    return timm.__version__


def fetch_sdist(version, cache=CACHE):
    """The path of timm-VERSION.tar.gz: cached, or downloaded by pip (which raises CalledProcessError offline)."""
    path = cache / f"timm-{version}.tar.gz"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
                        f"timm=={version}", "-d", str(cache)], check=True, capture_output=True, text=True)
    return path


SCRIPTS = ("train.py", "validate.py", "benchmark.py")  # timm's scripts: in its repository, not in its sdist or wheel
SCRIPTS_CACHE = CACHE.parent / "timm-scripts"
SCRIPTS_URL = "https://raw.githubusercontent.com/huggingface/pytorch-image-models/v{version}/{name}"


def fetch_scripts(version, cache=SCRIPTS_CACHE):
    """(folder, source): a folder holding timm's train.py, validate.py and benchmark.py, which its sdist lacks (it
    carries only timm/ and tests/). From $VITBENCH_TIMM_SCRIPTS (a timm checkout or any folder with them), else the
    cache (~/.cache/vitbench/timm-scripts/VERSION), else downloaded there from the repository at tag vVERSION; an
    OSError (urllib's URLError included) when none of these can give them."""
    given = os.environ.get("VITBENCH_TIMM_SCRIPTS")
    if given:
        missing = [name for name in SCRIPTS if not (Path(given) / name).is_file()]
        if missing:
            raise FileNotFoundError(f"VITBENCH_TIMM_SCRIPTS={given} has no {', '.join(missing)}")
        return Path(given), f"$VITBENCH_TIMM_SCRIPTS ({given})"
    folder = cache / version
    if all((folder / name).is_file() for name in SCRIPTS):
        return folder, f"the cache ({folder})"
    import urllib.request

    folder.mkdir(parents=True, exist_ok=True)
    for name in SCRIPTS:
        with urllib.request.urlopen(SCRIPTS_URL.format(version=version, name=name), timeout=30) as response:
            (folder / f"{name}.part").write_bytes(response.read())
        (folder / f"{name}.part").replace(folder / name)
    return folder, f"timm's repository at tag v{version}"


def extract_tests(sdist, version, folder):
    """timm's tests/test_models.py from `sdist` into `folder`, and a copy with our names registered as a timm PR would
    register them (pass 2); refuses an sdist of another version or a file whose lists moved."""
    with tarfile.open(sdist) as tar:
        member = tar.getmember(f"timm-{version}/tests/test_models.py")
        source = tar.extractfile(member).read().decode()
    (folder / "test_models.py").write_text(source)
    registered = source
    for name, extra in (("NON_STD_FILTERS = [", TRANSFORMERS), ("FEAT_INTER_FILTERS = [", OUR_MODULES)):
        if registered.count(name) != 1:
            raise SystemExit(f"timm {version}'s test_models.py has no single `{name}`; update {__file__} for it")
        registered = registered.replace(name, name + "".join(f"{e!r}, " for e in extra))
    (folder / "pass2").mkdir()
    (folder / "pass2" / "test_models.py").write_text(registered)


def our_names():
    import models
    from models.cnn import CNN_BASELINES

    return sorted([*models.MODEL_CONFIGS, *CNN_BASELINES])


def run(sdist, names, pytest_args=()):
    """Both passes over `names`; returns (exit status, [(pass, summary line)])."""
    version = timm_version()
    keyword = " or ".join(names)
    env = {**os.environ, "GITHUB_ACTIONS": "1", "PYTHONPATH": os.pathsep.join([str(REPO / "scripts"), str(REPO)])}
    common = [sys.executable, "-m", "pytest", "-p", "timm_model_tests", "-p", "no:cacheprovider", "-q",
              "-m", "not torchscript", "-W", "ignore::pytest.PytestUnknownMarkWarning", *pytest_args]
    status, summaries = 0, []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        extract_tests(sdist, version, folder)
        passes = [("timm's file", folder / "test_models.py", f"({keyword})"),
                  ("with our names registered", folder / "pass2" / "test_models.py",
                   f"({keyword}) and ({PASS2_TESTS})")]
        for label, path, selection in passes:
            done = subprocess.run([*common, "--rootdir", str(path.parent), str(path), "-k", selection], env=env,
                                  cwd=path.parent, capture_output=True, text=True)
            print(done.stdout[-20000:], done.stderr[-4000:], sep="\n")
            lines = done.stdout.strip().splitlines()
            summaries.append((label, lines[-1] if lines else f"no output (exit {done.returncode})"))
            status = status or done.returncode
    return status, summaries


# As a pytest plugin (`-p timm_model_tests`): our names registered before test_models.py lists models, and the
# exclusions above deselected.
def pytest_configure(config):
    import timm

    import models  # noqa: F401  (registers every name with timm)

    if Path(timm.__file__).resolve().is_relative_to(Path(config.rootpath).resolve()):
        raise SystemExit(f"timm was imported from {timm.__file__}, not the installed package")


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        name = getattr(item, "callspec", None) and item.callspec.params.get("model_name", "")
        patterns = EXCLUDED.get(getattr(item, "originalname", item.name), [])
        (drop if name and any(fnmatch.fnmatch(name, p) for p in patterns) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sdist", type=Path, help="timm-VERSION.tar.gz (default: cached or downloaded)")
    parser.add_argument("--names", nargs="+", default=["*"], help="shell patterns of our names to test")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments, after --")
    args = parser.parse_args(argv)
    names = [n for n in our_names() if any(fnmatch.fnmatch(n, p) for p in args.names)]
    if not names:
        parser.error(f"no registered name matches {args.names}; see `vitbench list`")
    try:
        sdist = args.sdist or fetch_sdist(timm_version())
    except subprocess.CalledProcessError as e:
        last = (e.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise SystemExit(f"could not download timm's sdist ({last[0]}); pass --sdist PATH") from None
    if not sdist.is_file():
        parser.error(f"--sdist {sdist} is not a file; pass timm-{timm_version()}.tar.gz")
    status, summaries = run(sdist, names, args.pytest_args)
    print(f"timm {timm_version()} tests/test_models.py on {len(names)} names:")
    for label, line in summaries:
        print(f"  {label}: {line}")
    return status


if __name__ == "__main__":
    sys.exit(main())
