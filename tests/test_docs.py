"""Every command and code block in README.md and docs/*.md runs, so none can rot (issue 36).

- Python blocks are executed, each in a fresh temporary folder.
- Shell blocks are checked in smoke mode, command by command: a `vitbench` command (or `torchrun ... -m bench.cli`)
  is parsed by the real argument parser, so its subcommand, every flag and every flag's value must be accepted;
  a `pytest` command's paths must exist and its options must be pytest's, its plugins' or `bench/conftest.py`'s;
  a script must exist (a shell script executable, with valid syntax). A block whose commands are cheap is marked
  `<!-- doc-test: run -->` on the line before it and is also run for real, in a temporary folder that sees the
  repository's `tests/` and `bench/`; `<!-- doc-test: run slow -->` does the same under the slow mark.
- TOML blocks are study specs and must load as one.
- A block that needs data or a download is marked `<!-- doc-test: skip (the reason) -->` and skips with it.
- Every relative link (and its #anchor) points at something that exists; inline `vitbench ...` spans name real
  subcommands and flags; inline repository paths exist.
"""
import ast
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
HARNESS_PAGES = ["cost", "accuracy", "studies", "reports", "configs", "reliability"]  # the list
LANGUAGES = {"python", "bash", "toml", "text"}
MARKER = re.compile(r"<!--\s*doc-test:\s*(skip|run slow|run)\s*(?:\((.*)\))?\s*-->")
FENCE = re.compile(r"^```(\S*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
BIN = Path(sys.executable).parent  # .venv/bin: vitbench, pytest


def shown(path):
    return str(path.relative_to(REPO))


@dataclass
class Block:
    path: Path
    line: int
    language: str
    code: str
    mode: str  # "check", "run", "run slow" or "skip"
    reason: str

    @property
    def id(self):
        return f"{shown(self.path)}:{self.line}"


def read_blocks(path):
    text = path.read_text()
    for match in FENCE.finditer(text):
        previous = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(previous)
        mode, reason = (marker.group(1), marker.group(2) or "") if marker else ("check", "")
        yield Block(path, text.count("\n", 0, match.start()) + 1, match.group(1), match.group(2), mode, reason)


BLOCKS = [block for path in DOCS for block in read_blocks(path)]


def of(language):
    chosen = [block for block in BLOCKS if block.language == language]
    return pytest.mark.parametrize("block", chosen, ids=[block.id for block in chosen])


# ----------------------------------------------------------------------------- the pages


def test_the_pages_exist_and_the_readme_links_each():
    readme = (REPO / "README.md").read_text()
    pages = {path.stem for path in DOCS[1:]}
    assert set(HARNESS_PAGES) <= pages
    for page in pages:
        assert f"(docs/{page}.md" in readme, f"README.md does not link docs/{page}.md"


def test_the_readme_is_short_and_has_a_table_of_contents():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move details to docs/"
    sections = [line[3:] for line in lines if line.startswith("## ")]
    assert "Results" in sections  # the lead engineer updates this section by name
    head = "\n".join(lines[:20])
    for section in sections:
        assert f"(#{slug(section)})" in head, f"the table of contents lacks {section!r}"


def test_the_readme_keeps_the_two_commands_ci_runs():
    """The two commands stand in README.md as they always have, and CI runs the README's test command."""
    readme = (REPO / "README.md").read_text()
    assert ("```bash\n./scripts/main.sh     # the main job: the default benchmark suite on this machine and its "
            "report\n./scripts/test.sh     # the test suite\n```") in readme
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == "./scripts/test.sh"


def test_every_block_names_its_language():
    for block in BLOCKS:
        assert block.language in LANGUAGES, f"{block.id}: a fenced block needs one of {sorted(LANGUAGES)}"
        if block.mode == "skip":
            assert block.reason.strip(), f"{block.id}: a skipped block says why: <!-- doc-test: skip (why) -->"


# ----------------------------------------------------------------------------- Python


@of("python")
def test_python_block_runs(block, tmp_path, monkeypatch):
    if block.mode == "skip":
        pytest.skip(block.reason)
    monkeypatch.chdir(tmp_path)
    exec(compile(block.code, block.id, "exec"), {"__name__": "__main__"})


# ----------------------------------------------------------------------------- TOML


@of("toml")
def test_toml_block_is_a_study_spec(block, tmp_path):
    from bench.accuracy.study import load_study_spec

    (tmp_path / "spec.toml").write_text(block.code)
    spec = load_study_spec(config=tmp_path / "spec.toml")
    assert spec.variants and spec.seeds == tomllib.loads(block.code)["seeds"]


# ----------------------------------------------------------------------------- shell


def shell_commands(code):
    """Each command of a block as its words: continuation lines joined, comments dropped, `a && b` split."""
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words:
            end = words.index("&&") if "&&" in words else len(words)
            command, words = words[:end], words[end + 1:]
            while command and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", command[0]):  # OMP_NUM_THREADS=1 ...
                command = command[1:]
            if command:
                yield command


def parses(argv, capsys):
    """The real parser accepts the command, and each job's config accepts every flag's value (type and range)."""
    from bench import configs
    from bench.cli import build_parser
    from bench.settings import given_flags
    from models.errors import ConfigError

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:
        if stop.code == 0 and "--help" in argv:
            return
        pytest.fail(f"`vitbench {shlex.join(argv)}` does not parse: {capsys.readouterr().err.strip()}")
    checked = {"train": ["TrainConfig"], "eval": ["EvalConfig"], "sweep": ["SweepSpec"], "export": ["ExportConfig"],
               "profile": ["ProfileConfig"], "synthetic": ["SyntheticConfig"],
               "study": ["StudyConfig", "TrainConfig", "SlurmConfig"]}
    preset = getattr(args, "preset", None)
    assert not preset or (REPO / "bench" / "presets" / f"{preset}.toml").is_file(), f"no preset {preset!r}"
    for name in checked.get(args.command, []):
        try:
            getattr(configs, name).check_some(given_flags(args, getattr(configs, name)), "the flags")
        except ConfigError as error:
            pytest.fail(f"`vitbench {shlex.join(argv)}`: {error}")


PYTEST_OPTIONS = []


def pytest_options():
    """pytest's and its plugins' options (without the conftests, which import torch), plus bench/conftest.py's."""
    if not PYTEST_OPTIONS:
        command = [sys.executable, "-m", "pytest", "--noconftest", "--help", "-p", "no:cacheprovider"]
        shown_help = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120).stdout
        ours = (REPO / "bench" / "conftest.py").read_text()
        PYTEST_OPTIONS.extend(set(re.findall(r"(--[\w-]+)", shown_help)) | set(re.findall(r"\"(--[\w-]+)\"", ours)))
    return PYTEST_OPTIONS


def check_script(path, where):
    assert path.is_file(), f"{where}: {shown(path)} does not exist"
    if path.suffix == ".sh":
        assert os.access(path, os.X_OK), f"{where}: {shown(path)} is not executable"
        subprocess.run(["bash", "-n", str(path)], check=True)
    elif path.suffix == ".py":
        ast.parse(path.read_text())


def check_command(words, where, capsys):
    program, args = words[0], words[1:]
    if program == "vitbench":
        parses(args, capsys)
    elif program == "torchrun":
        assert "-m" in args and args[args.index("-m") + 1] == "bench.cli", f"{where}: torchrun runs -m bench.cli"
        parses(args[args.index("-m") + 2:], capsys)
    elif program in ("pytest", ".venv/bin/pytest") or args[:2] == ["-m", "pytest"]:
        args = args[2:] if args[:2] == ["-m", "pytest"] else args
        for arg in args:
            if arg.startswith("--"):
                assert arg.split("=")[0] in pytest_options(), f"{where}: pytest has no option {arg.split('=')[0]}"
            elif not arg.startswith("-"):
                assert (REPO / arg).exists(), f"{where}: pytest path {arg} does not exist"
    elif program == "srun":  # its own options (as --name=value), then the command it starts
        check_command(args[next((i for i, word in enumerate(args) if not word.startswith("-")), len(args)):], where,
                      capsys)
    elif program.startswith(("./scripts/", "scripts/")):
        check_script(REPO / program, where)
    elif program in (".venv/bin/python", "python") and args and args[0].startswith("scripts/"):
        check_script(REPO / args[0], where)
    elif program == "cp":
        assert (REPO / args[0]).exists(), f"{where}: {args[0]} does not exist"
    else:
        pytest.fail(f"{where}: no smoke check for {program!r}; teach tests/test_docs.py one or mark the block")


@of("bash")
def test_shell_block_parses(block, capsys):
    if block.mode == "skip":
        pytest.skip(block.reason)
    commands = list(shell_commands(block.code))  # run ones are checked too: a slow one is often not run
    assert commands, f"{block.id}: an empty block"
    for words in commands:
        check_command(words, block.id, capsys)


RUN_BLOCKS = [pytest.param(block, id=block.id, marks=[pytest.mark.slow] if block.mode == "run slow" else [])
              for block in BLOCKS if block.language == "bash" and block.mode.startswith("run")]


@pytest.mark.parametrize("block", RUN_BLOCKS)
def test_shell_block_runs(block, tmp_path):
    """Blocks marked `run` are run for real, command by command, in a temporary folder (with the repository's
    tests/ and bench/ beside them, for the sample data and the presets): `run` ones are cheap (no torch), `run slow`
    ones train (the slow mark)."""
    for folder in ("tests", "bench"):
        (tmp_path / folder).symlink_to(REPO / folder)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for words in shell_commands(block.code):
        done = subprocess.run(words, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{block.id}: `{shlex.join(words)}` failed:\n{done.stderr}"
        assert done.stdout.strip(), f"{block.id}: `{shlex.join(words)}` printed nothing"


# ----------------------------------------------------------------------------- links and spans


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", lambda m: "_" if m.group() == "_" else "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path):
    text = FENCE.sub("", path.read_text())
    return {slug(line.lstrip("#")) for line in text.splitlines() if re.match(r"#{1,6} ", line)}


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", DOCS, ids=shown)
def test_every_relative_link_lands(path):
    text = FENCE.sub("", path.read_text())
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        landing = (path.parent / file).resolve() if file else path
        assert landing.exists(), f"{shown(path)}: the link {target} points at nothing"
        assert REPO in landing.parents or landing == REPO, f"{shown(path)}: {target} leaves the repository"
        if anchor and landing.suffix == ".md":
            assert anchor in anchors(landing), f"{shown(path)}: {target}: no heading #{anchor} in {shown(landing)}"


def spans(path):
    return re.findall(r"`([^`\n]+)`", FENCE.sub("", path.read_text()))


@pytest.mark.parametrize("path", DOCS, ids=shown)
def test_inline_vitbench_commands_name_real_flags(path):
    """`vitbench SUBCOMMAND --flag ...` in the prose: the subcommand exists and so does every flag it names."""
    import argparse

    from bench.cli import build_parser

    parser = build_parser()
    sub = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    for span in spans(path):
        words = span.split()
        if words[0] != "vitbench" or len(words) < 2 or not re.fullmatch(r"[a-z-]+", words[1]):
            continue  # not a command, or a placeholder: `vitbench COMMAND --help`, `vitbench <command>: error`
        command = sub.choices.get(words[1]) if not words[1].startswith("-") else parser
        assert command is not None, f"{shown(path)}: `{span}`: vitbench has no command {words[1]!r}"
        for flag in (word.split("=")[0] for word in words if word.startswith("--")):
            assert flag in command._option_string_actions, f"{shown(path)}: `{span}`: no flag {flag}"


@pytest.mark.parametrize("path", DOCS, ids=shown)
def test_inline_repository_paths_exist(path):
    for span in spans(path):
        if re.fullmatch(r"(models|bench|tests|scripts|results|docs|\.ci)/[\w.\-/]*", span):
            assert (REPO / span).exists(), f"{shown(path)}: `{span}` does not exist"
