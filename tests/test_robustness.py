"""Issue 13, "nothing lost, nothing silently wrong": each guarantee of docs/reliability.md, one test each."""
import dataclasses
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import timm
import tomli_w
import torch
from PIL import Image

import models
from bench import factory
from bench.accuracy import train
from bench.accuracy.data import load_rgb, scan_split
from bench.accuracy.evaluate import model_for_checkpoint
from bench.cli import main
from bench.cost.sweep import SweepRun, SweepSpec, run_sweep
from bench.errors import DatasetError, ResultsError
from bench.outputs import HOLDER, LOCK, folder_lock, take_lock
from bench.report.build import build_report, load_inputs
from bench.settings import model_arg_pairs
from models.errors import CheckpointError, ConfigError, InputShapeError, UnknownModelError
from tests.harness_helpers import (
    REPO_ROOT,
    TINY_VIT,
    cli_error,
    tiny_cli_args,
    tiny_config,
    tiny_synthetic,
    write_image,
)
from tests.test_locks import held_by_child

SPEC = {"families": ["vit"], "depth": [1], "num_heads": [2], "embed_dim": [32], "patch_size": [8], "img_size": [32],
        "measure": ["params"]}
DEAD_PID = 2**30  # above any pid_max: never a live process


def quiet(_):
    pass


def sweep(out, **flags):
    return run_sweep(SweepSpec.from_flat({**SPEC, **flags}), out, progress=quiet)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_synthetic(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def one_epoch_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vit"
    return out, train.start(tiny_config(data, out, model="vb_vit_tiny_patch16_224", epochs=1), progress=False)


# --- already done: each verified -----------------------------------------------------------------------------
def test_overwrite_refuses_while_foreign_files_are_inside(tmp_path):
    out = tmp_path / "sw"
    sweep(out)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ResultsError, match="notes.txt.*which vitbench did not write"):
        run_sweep(SweepSpec.from_flat(SPEC), out, overwrite=True, progress=quiet)
    assert (out / "notes.txt").read_text() == "mine" and (out / "sweep.csv").exists()


def test_eval_out_refuses_an_existing_file(tmp_path, capsys):
    (tmp_path / "eval.json").write_text("keep")
    line = cli_error(capsys, "eval", "--checkpoint", "x.pth", "--data", str(tmp_path), "--out",
                     str(tmp_path / "eval.json"))
    assert "already exists; pass --overwrite" in line and (tmp_path / "eval.json").read_text() == "keep"


def test_torn_sweep_block_is_measured_again_and_a_full_disk_is_one_error(tmp_path, monkeypatch):
    out = tmp_path / "sw"
    first = sweep(out)
    rows = (out / "rows.jsonl").read_text().splitlines()
    assert all(json.loads(row)["config_rows"] == len(rows) for row in rows)
    (out / "rows.jsonl").write_text("\n".join(rows[:-1]) + "\n")  # the last row of the block never landed
    measured = []
    again = run_sweep(SweepSpec.from_flat(SPEC), out, resume=True, progress=measured.append)
    assert len(measured) == 1 and len(again) == len(first)
    (out / "rows.jsonl").write_text("")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    run = SweepRun(out, SweepSpec.from_flat(SPEC), resume=True)
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ResultsError, match="cannot write to .*No space left on device.*--resume"):
        run.append([{"config_key": "k", "value": 1}])


def test_a_one_class_dataset_is_refused(tmp_path):
    for split in ("train", "val"):
        write_image(tmp_path / "d" / split / "only" / "a.png")
    with pytest.raises(DatasetError, match="needs at least 2 classes"):
        train.start(tiny_config(tmp_path / "d", tmp_path / "run"), progress=False)
    assert not (tmp_path / "run").exists()  # a failed start removes the folder it made


def test_min_lr_follows_a_small_lr_and_a_min_lr_above_the_peak_warns():
    config = tiny_config("d", "o")
    assert config.resolved_min_lr(5e-5, quiet) == pytest.approx(1e-6)
    warnings = []
    config.min_lr = 1e-3
    assert config.resolved_min_lr(1e-4, warnings.append) == 1e-3
    assert "above the peak lr" in warnings[0]


@pytest.mark.parametrize("longer", [{"epochs": 2}, {"budget_pflop": 1.0}])
def test_a_finished_run_is_never_extended_into_a_warm_restart(data, tmp_path, longer):
    out = tmp_path / "run"
    train.start(tiny_config(data, out, model="vb_vit_tiny_patch16_224", epochs=1), progress=False)
    with pytest.raises(ConfigError, match="cannot resume with other settings.*--init"):
        train.resume(out, longer, progress=False)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when CUDA is absent")
def test_training_on_cuda_without_a_gpu_is_a_config_error(data, tmp_path):
    with pytest.raises(ConfigError, match="cuda"):
        train.start(tiny_config(data, tmp_path / "run", device="cuda"), progress=False)


def test_model_arg_booleans_in_any_case():
    assert model_arg_pairs(["qkv_bias=False", "a=TRUE", "b=true", "depth=2"]) == {
        "qkv_bias": False, "a": True, "b": True, "depth": 2}


# --- data: symlinks and 16-bit images ------------------------------------------------------------------------
def test_symlink_loops_are_one_error(tmp_path):
    for name in ("a", "b"):
        write_image(tmp_path / "train" / name / "x.png")
    (tmp_path / "train" / "a" / "again").symlink_to(tmp_path / "train" / "a")
    with pytest.raises(DatasetError, match=r"symlink loop: .*a/again points back to"):
        scan_split(tmp_path, "train")


def test_linked_files_are_counted_once_and_never_under_another_class(tmp_path):
    for name in ("a", "b"):
        write_image(tmp_path / "train" / name / "x.png")
    outside = write_image(tmp_path / "elsewhere" / "y.png")
    (tmp_path / "train" / "a" / "b-link").symlink_to(tmp_path / "train" / "b")  # b's folder inside a
    (tmp_path / "train" / "a" / "bx.png").symlink_to(tmp_path / "train" / "b" / "x.png")  # b's file inside a
    (tmp_path / "train" / "b" / "y1.png").symlink_to(outside)
    (tmp_path / "train" / "b" / "y2.png").symlink_to(outside)  # the same file twice
    split = scan_split(tmp_path, "train")
    assert split.counts() == {"a": 1, "b": 2}
    assert [os.path.basename(p) for p, t in split.samples if t == 0] == ["x.png"]


def test_16_bit_grayscale_pngs_decode_to_their_8_bit_values(tmp_path):
    ramp = (np.arange(32 * 64, dtype=np.uint32).reshape(32, 64) * 32).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    rgb = np.asarray(load_rgb(tmp_path / "deep.png"))
    assert rgb.shape == (32, 64, 3) and (rgb == (ramp >> 8)[..., None]).all()


# --- models: settings and inputs -----------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, message", [
    (dict(qkv_bias="no"), "qkv_bias='no' must be True or False"),
    (dict(img_size=0), "img_size=0 must be a positive integer"),
])
def test_python_api_settings_are_type_checked(overrides, message):
    with pytest.raises(ConfigError, match=message) as raised:
        models.create_model("vb_vit_tiny_patch16_224", **overrides)
    assert "\n" not in str(raised.value)


def bad_values(bound):
    """Every class of bad value for a numeric setting, each once: past each end, the non-finite, the wrong types."""
    step = 1 if bound.kind is int else 1e-6
    below = bound.low if bound.open_low else bound.low - step
    above = bound.high if bound.open_high else bound.high + step
    wrong_type = [2.0] if bound.kind is int else []  # an int is a fine float, a float is not an int
    return [below, above, float("nan"), float("inf"), float("-inf"), 10**400, True, "4", None, [4], *wrong_type]


def good_values(bound):
    """The ends of the range that are allowed, and just inside the open ones."""
    step = 1 if bound.kind is int else 1e-6
    return [bound.low + step if bound.open_low else bound.low, bound.high - step if bound.open_high else bound.high]


def test_every_numeric_model_setting_refuses_every_class_of_bad_value_in_one_line():
    from models.registry import TOKENIZER_OPTIONS
    from models.settings import NUMERIC_SETTINGS, OPTIONAL
    for key, bound in NUMERIC_SETTINGS.items():
        name = "t2t_vit_7" if key in TOKENIZER_OPTIONS["t2t"] else "vb_vit_tiny_patch16_224"
        for value in bad_values(bound):
            if value is None and key in OPTIONAL:
                continue
            with pytest.raises(ConfigError, match=f"^{key}=.* must be {re.escape(str(bound))}[:;] pass e.g. ") as e:
                models.resolve_config(name, **{key: value})
            assert "\n" not in str(e.value), (key, value)
        for value in good_values(bound):
            config = models.resolve_config(name, **{key: value})
            assert config[key] == value and type(config[key]) is bound.kind, (key, value)


def test_the_builders_apply_the_settings_table():
    with pytest.raises(ConfigError, match="^mlp_ratio=inf is out of range"):
        models.create_model("vb_vit_tiny_patch16_224", mlp_ratio=float("inf"))
    with pytest.raises(ConfigError, match="^depth=2.0 must be an integer in \\[1, 1024\\]; pass e.g. depth=4"):
        timm.create_model("t2t_vit_7", depth=2.0)


@pytest.mark.parametrize("name", [None, 123])
def test_a_model_name_must_be_a_string(name):
    with pytest.raises(UnknownModelError, match="is not a string"):
        models.create_model(name)


def test_booleans_accept_0_and_1():
    model = models.create_model("vb_vit_tiny_patch16_224", qkv_bias=0, **{**TINY_VIT, "img_size": 32})
    assert model.config["qkv_bias"] is False and model.blocks[0].attn.qkv.bias is None


def test_input_dtypes_are_cast_or_refused():
    model = models.create_model("vb_vit_tiny_patch16_224", img_size=32, **TINY_VIT).eval()
    x = torch.randn(2, 3, 32, 32)
    expected = model(x)
    assert torch.allclose(model(x.double()), expected, atol=1e-5)
    assert model(x.half()).dtype == torch.float32
    for bad in (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.zeros(2, 3, 32, 32, dtype=torch.int64)):
        with pytest.raises(InputShapeError, match=r"expected a float image batch.*x.float\(\) / 255"):
            model(bad)


def test_duplicated_factory_keywords_are_a_config_error():
    with pytest.raises(ConfigError, match=r"\['img_size'\] repeat settings"):
        factory.create("vb_vit_tiny_patch16_224", {**TINY_VIT, "img_size": 64}, 3, 32, 0.0)


def test_an_ema_only_checkpoint_loads_without_flags(tmp_path):
    source = models.create_model("vb_vit_tiny_patch16_224", img_size=32, **TINY_VIT)
    torch.save({"state_dict_ema": source.state_dict(), "epoch": 3}, tmp_path / "ema.pth")
    target = models.create_model("vb_vit_tiny_patch16_224", img_size=32, **TINY_VIT)
    models.load_checkpoint(target, tmp_path / "ema.pth")
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))
    other = models.create_model("vb_vit_tiny_patch16_224", img_size=32, **TINY_VIT)
    torch.save({"state_dict": other.state_dict(), "state_dict_ema": source.state_dict()}, tmp_path / "both.pth")
    models.load_checkpoint(target, tmp_path / "both.pth", use_ema=True)
    assert torch.equal(target.head.weight, source.head.weight)
    models.load_checkpoint(target, tmp_path / "both.pth")
    assert torch.equal(target.head.weight, other.head.weight)


# --- locks ---------------------------------------------------------------------------------------------------
def test_a_locked_folder_is_refused_naming_the_holder(tmp_path, data):
    out = tmp_path / "sw"
    with held_by_child(out) as holder:
        with pytest.raises(ResultsError, match=rf"in use by another vitbench process \(sweep, pid {holder.pid} on "):
            sweep(out)
        with pytest.raises(ResultsError, match=rf"pid {holder.pid}"):
            train.start(tiny_config(data, out), progress=False)


def test_a_stale_lock_is_taken_over_and_released(tmp_path):
    out = tmp_path / "sw"
    out.mkdir()
    (out / LOCK).write_text(f"{DEAD_PID} sweep\n")  # what a killed holder leaves: the files, no kernel lock
    (out / HOLDER).write_text(json.dumps({"host": "gone", "pid": DEAD_PID, "kind": "sweep"}))
    with folder_lock(out, "study"):
        assert json.loads((out / HOLDER).read_text())["pid"] == os.getpid()  # taken over: the holder is us
        with pytest.raises(ResultsError, match=rf"\(study, pid {os.getpid()} on "):
            take_lock(out, "sweep")  # and held: another taker is refused
    assert sorted(out.iterdir()) == []  # released: LOCK and HOLDER gone, the folder kept
    (out / LOCK).write_text(f"{DEAD_PID} sweep\n")
    sweep(out)
    assert (out / "sweep.csv").exists() and not (out / LOCK).exists()
    with folder_lock(tmp_path / "new", "study"):
        assert json.loads((tmp_path / "new" / HOLDER).read_text())["pid"] == os.getpid()
    assert not (tmp_path / "new").exists()  # made only for the lock
    with folder_lock(out, "run", take=False):  # a DDP rank that does not write
        assert not (out / LOCK).exists()


@pytest.mark.slow
def test_a_second_process_cannot_work_in_a_locked_folder(tmp_path):
    out = tmp_path / "sw"
    code = f"from bench.outputs import folder_lock; import time\nwith folder_lock({str(out)!r}, 'sweep'):\n" \
           "    print('locked', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ResultsError, match=f"pid {holder.pid}"):
            sweep(out)
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    sweep(out, depth=[1])  # its process gone, the lock is stale
    assert (out / "sweep.csv").exists()


# --- command-line values -------------------------------------------------------------------------------------
@pytest.mark.parametrize("flags, message", [
    (["--img-size", "0"], "img_size=0 is not allowed; it must be an integer >= 1"),
    (["--batch-size", "0"], "batch_size=0"),
    (["--repeats", "0"], "repeats=0"),
    (["--warmup", "-1"], "warmup=-1"),
])
def test_profile_sizes_must_be_positive(flags, message, capsys):
    assert message in cli_error(capsys, "profile", "vb_vit_tiny_patch16_224", *flags)


def test_train_values_of_the_wrong_type_are_one_line(data, tmp_path, capsys):
    line = cli_error(capsys, "train", *tiny_cli_args(), "--data", str(data), "--out", str(tmp_path / "r"),
                     "--workers", "-1")
    assert "workers=-1 is not allowed; it must be an integer >= 0" in line
    line = cli_error(capsys, "train", *tiny_cli_args(), "--model-arg", "depth=abc", "--data", str(data), "--out",
                     str(tmp_path / "r"))
    assert "depth='abc' must be an integer" in line and not (tmp_path / "r").exists()


@pytest.mark.parametrize("toml, message", [
    ('depth = ["a"]', r"depth=\['a'\] is not allowed; it must be a list, each an integer >= 1"),
    ("depth = [-2]", r"depth=\[-2\] is not allowed"),
    ("mlp_ratio = [0]", r"mlp_ratio=\[0\] is not allowed; it must be a list, each a finite number > 0"),
    ("depth = 4", "depth=4 is not allowed; it must be a list"),
    ('batch_size = "8"', "batch_size='8' is not allowed; it must be an integer"),
    ("families = []", "nothing to measure"),
])
def test_sweep_toml_values_of_the_wrong_type(toml, message, tmp_path):
    (tmp_path / "grid.toml").write_text(toml + "\n")
    with pytest.raises(ConfigError, match=message):
        SweepSpec.from_sources(tmp_path / "grid.toml")


def test_an_empty_grid_axis_keeps_the_base_value(tmp_path):
    table = sweep(tmp_path / "sw", depth=[], embed_dim=[32, 64])  # the base vb_vit_small_patch16_224 has 12 blocks
    assert set(zip(table["depth"], table["embed_dim"])) == {(12, 32), (12, 64)} and "config_depth" not in table


# --- outputs that are a file, read-only or on a full disk ---------------------------------------------------
@pytest.mark.parametrize("command", [
    ["sweep", "--families", "vit", "--measure", "params"],
    ["synthetic", "--classes", "2", "--train-per-class", "1", "--val-per-class", "1"],
    ["report"],
])
def test_out_that_is_a_file_is_one_line(command, tmp_path, capsys):
    (tmp_path / "taken").write_text("keep")
    assert "is a file, not a folder" in cli_error(capsys, *command, "--out", str(tmp_path / "taken"))
    assert (tmp_path / "taken").read_text() == "keep"


def test_train_out_that_is_a_file_is_one_line(data, tmp_path, capsys):
    (tmp_path / "taken").write_text("keep")
    line = cli_error(capsys, "train", *tiny_cli_args(), "--data", str(data), "--out", str(tmp_path / "taken"))
    assert "is a file, not a folder" in line and (tmp_path / "taken").read_text() == "keep"


def read_only_folder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    if os.access(folder, os.W_OK):
        folder.chmod(0o700)
        pytest.skip("running as root: chmod does not stop writes")
    return folder


def test_a_read_only_out_is_one_line(tmp_path, capsys):
    folder = read_only_folder(tmp_path)
    try:
        line = cli_error(capsys, "sweep", "--families", "vit", "--measure", "params", "--out", str(folder / "sw"))
        assert f"cannot write {folder}" in line and "Permission denied" in line
        line = cli_error(capsys, "synthetic", "--classes", "2", "--train-per-class", "1", "--val-per-class", "1",
                         "--out", str(folder / "syn"))
        assert str(folder) in line and "Permission denied" in line
    finally:
        folder.chmod(0o700)


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    line = cli_error(capsys, "sweep", "--families", "vit", "--depth", "1", "--heads", "2", "--embed-dim", "32",
                     "--img-size", "32", "--patch-size", "8", "--measure", "params", "--out", str(tmp_path / "sw"))
    assert f"{tmp_path / 'sw'}" in line and "No space left on device; free space or choose another --out" in line


def test_an_oserror_without_a_file_keeps_its_traceback(monkeypatch):
    class Broken:
        def read_text(self):
            raise OSError("a bug")

    monkeypatch.setattr("bench.cli.SIZE_TABLE", Broken())
    with pytest.raises(OSError, match="a bug"):
        main(["list"])


# --- checkpoints and evaluation ------------------------------------------------------------------------------
def test_a_truncated_or_foreign_last_pth_is_one_checkpoint_error(one_epoch_run, tmp_path):
    out, _ = one_epoch_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    last = copy / "last.pth"
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        train.resume(copy, progress=False)
    torch.save({"state_dict": {}}, last)
    with pytest.raises(CheckpointError, match="not a resumable vitbench checkpoint.*--overwrite"):
        train.resume(copy, progress=False)


def test_eval_on_other_classes_names_them(one_epoch_run, tmp_path):
    out, _ = one_epoch_run
    classes = torch.load(out / "best.pth", weights_only=True)["build"]["classes"]
    with pytest.raises(CheckpointError, match=rf"only in checkpoint: {classes[-1]}; only in data: zebra"):
        model_for_checkpoint(out / "best.pth", [*classes[:-1], "zebra"])


# --- hints that never point at each other --------------------------------------------------------------------
def test_a_run_without_a_finished_epoch_points_at_overwrite_only(data, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    config = tiny_config(data, out)
    (out / "config.json").write_text(json.dumps(train.jsonable(dataclasses.asdict(config))))
    line = cli_error(capsys, "train", *tiny_cli_args(), "--data", str(data), "--out", str(out))
    assert "never finished a step, nothing worth keeping; pass --overwrite" in line and "--resume" not in line
    line = cli_error(capsys, "train", "--out", str(out), "--resume")
    assert "nothing finished to resume from; start it again with --overwrite" in line


# --- reports -------------------------------------------------------------------------------------------------
def test_report_of_a_results_folder_reports_each_and_keeps_same_named_inputs_apart(tmp_path):
    results = tmp_path / "results"
    sweep(results / "A" / "sw")
    sweep(results / "B" / "sw", depth=[2])
    (results / "README.md").write_text("# results\n")
    (results / "notes").mkdir()
    (results / "notes" / "todo.txt").write_text("later")
    assert [p.parent.name for p in load_inputs([results]).sources()] == ["A", "B"]
    build_report([results], tmp_path / "report")
    first, second = ((tmp_path / "report" / f"cost_{tag}_all.csv").read_text() for tag in ("sw", "sw-2"))
    assert first != second


# --- outputs never overlap their inputs ------------------------------------------------------------------------
def overlap_cases(data, run):
    """(argv, input it overlaps) for every command that reads a folder or file and writes another."""
    train_args = ["train", *tiny_cli_args(), "--data", str(data)]
    return [
        (["subset", "random-2", "--root", str(data), "--out", str(data), "--overwrite"], "is the input"),
        (["subset", "random-2", "--root", str(data), "--out", str(data / "train" / "extra")], "is inside the input"),
        (["subset", "random-2", "--root", str(data), "--out", str(data.parent)], "contains the input"),
        ([*train_args, "--out", str(data / "runs" / "x")], "is inside the input"),
        ([*train_args, "--out", str(data.parent)], "contains the input"),
        ([*train_args, "--out", str(run), "--init", str(run / "last.pth"), "--overwrite"], "contains the input"),
        (["study", "--data", str(data), "--out", str(data / "study")], "is inside the input"),
        (["report", str(run), "--out", str(run / "report")], "is inside the input"),
        (["report", str(run), "--out", str(run.parent), "--overwrite"], "contains the input"),
        (["eval", "--checkpoint", str(run / "best.pth"), "--data", str(data), "--out", str(run / "best.pth"),
          "--overwrite"], "is the input"),
        (["eval", "--checkpoint", str(run / "best.pth"), "--data", str(data), "--out", str(data / "r.json")],
         "is inside the input"),
    ]


def test_no_command_writes_into_what_it_reads(data, one_epoch_run, tmp_path, capsys):
    run, _ = one_epoch_run
    (tmp_path / "link").symlink_to(data)  # a link cannot hide the overlap: paths are compared resolved
    before = sorted(str(p) for p in data.rglob("*"))
    for argv, where in [*overlap_cases(data, run), *overlap_cases(tmp_path / "link", run)[:2]]:
        message = cli_error(capsys, *argv)
        assert f"{where}" in message and "choose an --out outside" in message, (argv, message)
    assert sorted(str(p) for p in data.rglob("*")) == before  # nothing was added to or removed from the input


@pytest.mark.parametrize("flag, value", [("--batch-size", "0"), ("--repeats", "0"), ("--warmup", "-1"),
                                         ("--batch-size", "-3")])
def test_sweep_zero_sizes_are_errors_not_defaults(tmp_path, capsys, flag, value):
    grid = ["--families", "vit", "--depth", "1", "--heads", "2", "--embed-dim", "32", "--patch-size", "16",
            "--img-size", "32", "--measure", "params"]
    message = cli_error(capsys, "sweep", *grid, flag, value, "--out", str(tmp_path / "sw"))
    assert f"{flag[2:].replace('-', '_')}={value}" in message and not (tmp_path / "sw" / "spec.json").exists()


@pytest.mark.slow
def test_sweep_provenance_names_the_allocator_its_timings_use(tmp_path):
    """In a fresh process (the policy is process-wide): provenance.json is written before the first timing."""
    grid = ["--families", "vit", "--depth", "1", "--heads", "2", "--embed-dim", "32", "--patch-size", "16",
            "--img-size", "32", "--measure", "params", "throughput", "--repeats", "1", "--warmup", "0"]
    subprocess.run([sys.executable, "-m", "bench.cli", "sweep", *grid, "--out", str(tmp_path / "sw")], check=True,
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert json.loads((tmp_path / "sw" / "provenance.json").read_text())["allocator"].startswith("steady")


def test_a_class_without_readable_test_images_is_na_not_zero(data, tmp_path, capsys):
    broken = tmp_path / "data"
    shutil.copytree(data, broken)
    lost = sorted(p.name for p in (broken / "val").iterdir())[0]
    for image in (broken / "val" / lost).iterdir():
        image.write_bytes(b"not an image")
    warnings = []
    summary = train.start(tiny_config(broken, tmp_path / "run", epochs=1), progress=False, warn=warnings.append)
    assert summary["per_class_top1"][lost] is None and summary["classes_without_test_images"] == [lost]
    assert any(f"no readable image of {lost}" in w and "n/a" in w for w in warnings)
    assert main(["eval", "--checkpoint", str(tmp_path / "run" / "best.pth"), "--data", str(broken)]) == 0
    shown = capsys.readouterr()
    assert f"{lost}" in shown.out and "n/a" in shown.out and f"no readable image of {lost}" in shown.err
    with pytest.raises(DatasetError, match="not an image|cannot|decode"):
        train.start(tiny_config(broken, tmp_path / "strict", epochs=1, strict=True), progress=False, warn=quiet)


# --- every file vitbench reads back: damaged, it is one line naming the file and the command that recovers -----
STUDY_SPEC = {"fractions": [1.0], "seeds": [0], "train": {
    "epochs": 1, "batch_size": 4, "img_size": 32, "lr": 1e-3, "warmup_epochs": 0, "workers": 0, "threads": 1,
    "mixup": 0.0, "cutmix": 0.0, "auto_augment": "", "crop_pct": 1.0, "holdout": 3},
    "arms": [{"name": "vit", "label": "ViT", "model": "vb_vit_tiny_patch16_224",
              "overrides": {k: v for k, v in TINY_VIT.items() if k != "depth"}, "depths": [1]}]}


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):
    """A finished run, study and sweep to damage copies of."""
    root = tmp_path_factory.mktemp("finished")
    train.start(tiny_config(data, root / "run", model="vb_vit_tiny_patch16_224", epochs=1), progress=False,
                warn=quiet)
    (root / "spec.toml").write_text(tomli_w.dumps(STUDY_SPEC))
    assert main(["study", "--config", str(root / "spec.toml"), "--data", str(data), "--out", str(root / "study")]) == 0
    sweep(root / "sweep")
    return root


def damage(path):
    text = path.read_text()
    path.write_text('"an unterminated quote\n' if path.suffix == ".csv" else text[: len(text) // 2])


RUN_IN_STUDY = "study/runs/vit-d1-f1-s0"
READ_BACK = [  # (damaged file, command, what the error says to do)
    ("run/config.json", ["report", "{root}/run"], "train it again with --overwrite"),
    ("run/config.json", ["train", "--resume", "--out", "{root}/run"], "pass --overwrite to start it over"),
    ("run/summary.json", ["report", "{root}/run"], "--resume --out"),
    ("run/metrics.jsonl", ["report", "{root}/run"], "--resume --out"),
    (f"{RUN_IN_STUDY}/summary.json", ["study", "--out", "{root}/study", "--report-only"], "--resume"),
    (f"{RUN_IN_STUDY}/metrics.jsonl", ["study", "--out", "{root}/study", "--report-only"], "--resume"),
    ("study/study.json", ["study", "--out", "{root}/study", "--report-only"], "new --out"),
    ("study/study.json", ["report", "{root}/study"], "new --out"),
    ("study/results.csv", ["report", "{root}/study"], "--report-only"),
    ("sweep/sweep.csv", ["report", "{root}/sweep"], "sweep --resume"),
    ("sweep/provenance.json", ["report", "{root}/sweep"], "--overwrite"),
    ("sweep/spec.json", ["sweep", "--config", "{root}/sweep.toml", "--resume", "--out", "{root}/sweep"], "--overwrite"),
]


@pytest.mark.parametrize("damaged, argv, fix", READ_BACK, ids=[f"{d}:{a[0]}" for d, a, _ in READ_BACK])
def test_a_damaged_file_read_back_is_one_line_naming_it_and_the_fix(finished, tmp_path, capsys, damaged, argv, fix):
    root = tmp_path / "copy"
    shutil.copytree(finished, root, symlinks=True)
    (root / "sweep.toml").write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in SPEC.items()))
    damage(root / damaged)
    message = cli_error(capsys, *[part.format(root=root) for part in argv], "--out", str(tmp_path / "report")) \
        if argv[0] == "report" else cli_error(capsys, *[part.format(root=root) for part in argv])
    assert damaged.split("/")[-1] in message and fix in message, message


def test_damaged_files_are_recovered_by_the_command_the_error_names(finished, data, tmp_path, capsys):
    root = tmp_path / "copy"  # copied away from its data, which the records name relative to themselves
    shutil.copytree(finished, root, symlinks=True)
    for name in ("summary.json", "metrics.jsonl"):
        damage(root / RUN_IN_STUDY / name)
    assert main(["study", "--out", str(root / "study"), "--resume"]) == 2
    assert "resume with --data DIR where its images now lie" in capsys.readouterr().err
    assert main(["study", "--out", str(root / "study"), "--resume", "--data", str(data)]) == 0  # finished again
    summary = json.loads((root / RUN_IN_STUDY / "summary.json").read_text())
    assert summary["epochs"] == 1 and len((root / RUN_IN_STUDY / "metrics.jsonl").read_text().splitlines()) == 1
    damage(root / "run" / "config.json")  # the folder's marker: still recognised as ours, so --overwrite may redo it
    assert train.RUN_FOLDER.prepare(root / "run", overwrite=True) == "overwrite"
    (root / "run" / "notes.txt").write_text("mine")  # but never while it holds a file vitbench did not write
    with pytest.raises(ResultsError, match="not a vitbench run folder"):
        train.RUN_FOLDER.prepare(root / "run", overwrite=True)


# --- reports: interrupted ones are replaced, concurrent ones refused ----------------------------------------
def test_an_interrupted_report_is_marked_unfinished_and_overwrite_replaces_it(one_epoch_run, tmp_path, monkeypatch):
    import bench.report.build as build

    run, _ = one_epoch_run
    out = tmp_path / "report"
    real_figure = build.ReportWriter.figure

    def interrupted(writer, name, *args):
        if name == "mac_breakdown":  # a few tables and figures in: Ctrl-C
            raise KeyboardInterrupt
        return real_figure(writer, name, *args)

    monkeypatch.setattr(build.ReportWriter, "figure", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_report([run], out, argv=["vitbench", "report"])
    assert "**Unfinished**" in (out / "index.md").read_text() and not (out / LOCK).exists()
    monkeypatch.undo()
    index = build_report([run], out, argv=["vitbench", "report"], overwrite=True)
    assert "**Unfinished**" not in index.read_text() and (out / "mac_breakdown.png").is_file()


def test_a_second_report_into_a_folder_in_use_is_refused(one_epoch_run, tmp_path):
    run, _ = one_epoch_run
    out = tmp_path / "report"
    with folder_lock(out, "report"), pytest.raises(ResultsError, match="in use by another vitbench process"):
        build_report([run], out, argv=["vitbench", "report"])
