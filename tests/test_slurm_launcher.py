"""`--launcher slurm` through submitit, without daemons: the "debug" executor runs each job in this process (so a
job can be made to fail), the "local" one in its own process as a Slurm job would. tests/test_slurm_cluster.py runs
the same on a real single-machine Slurm."""
import os

import pandas as pd
import pytest
import tomli_w

from bench.accuracy import study
from bench.configs import SlurmConfig
from bench.errors import ResultsError
from bench.launch import slurm
from bench.outputs import read_back, release_lock, take_lock
from models.errors import ConfigError
from tests.harness_helpers import TINY_T2T, tiny_synthetic

pytest.importorskip("submitit")

TINY = {"fractions": [1.0], "seeds": [0, 1], "train": {
    "epochs": 1, "batch_size": 4, "img_size": 32, "lr": 1e-3, "warmup_epochs": 0, "workers": 0, "threads": 1,
    "mixup": 0.0, "cutmix": 0.0, "auto_augment": "", "crop_pct": 1.0, "holdout": 3, "data_mode": "files"},
    "arms": [{"name": "t2t", "label": "T2T-ViT", "model": "t2t_vit_7",
              "overrides": {k: v for k, v in TINY_T2T.items() if k != "depth"}, "depths": [1]}]}
def write_spec(folder, **changes):
    path = folder / "spec.toml"
    path.write_text(tomli_w.dumps({**TINY, **changes}))
    return path


@pytest.fixture
def no_post_mortem(monkeypatch):
    """submitit's debug executor opens pdb on a job's exception; a test wants the exception."""
    monkeypatch.setattr("pdb.post_mortem", lambda *args: None)


@pytest.fixture
def srun_on_path(tmp_path_factory, monkeypatch):
    """submitit builds a Slurm executor only where `srun` is on PATH; these tests read the executor's parameters and
    submit nothing, so a stub stands in on a machine without Slurm (tests/test_slurm_cluster.py uses the real one)."""
    folder = tmp_path_factory.mktemp("bin")
    (folder / "srun").write_text("#!/bin/sh\nexit 1\n")
    (folder / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")


SAME = ["arm", "seed", "val_top1", "test_top1", "test_top5", "updates", "train_pflop"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_synthetic(tmp_path_factory.mktemp("data"), classes=3, train_per_class=4, val_per_class=2)


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "spec.toml"
    path.write_text(tomli_w.dumps(TINY))
    return path


@pytest.fixture(scope="module")
def local_study(data, spec_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "study"
    study.run_study(study.load_study_spec(config=spec_file), data, out, warn=lambda line: None)
    return study.collect(study.load_study_spec(config=spec_file), out)


def test_debug_executor_study_equals_the_local_launcher(data, spec_file, local_study, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths in, absolute paths to the jobs
    held = []

    def train_run(config, warn):
        out = (tmp_path / "study").resolve()
        lock = take_lock(out, "probe")  # the study's lock is free while runs train: runs on many nodes
        release_lock(out, *lock)
        held.append(config)
        return original(config, warn)

    original = study.train_run
    monkeypatch.setattr(study, "train_run", train_run)
    spec = study.load_study_spec(config=spec_file)
    failed = slurm.run_study_on_slurm(spec, os.path.relpath(data), "study", cluster="debug", warn=lambda line: None)
    assert failed == [] and len(held) == 2
    assert all(os.path.isabs(config.out) and os.path.isabs(config.data) for config in held)
    ours = study.collect(spec, tmp_path / "study")
    pd.testing.assert_frame_equal(ours[SAME], local_study[SAME])
    assert any((tmp_path / "study" / "slurm").iterdir())  # submitit's pickles and logs, vitbench's own:
    assert study.STUDY_FOLDER.prepare(tmp_path / "study", overwrite=True) == "overwrite"


def test_a_failed_job_is_reported_the_others_collected_and_resume_submits_it_alone(data, spec_file, tmp_path,
                                                                                   monkeypatch, no_post_mortem):
    original, calls = study.train_run, []

    def failing_seed_1(config, warn):
        calls.append(config.seed)
        if config.seed == 1 and calls.count(1) == 1:
            raise RuntimeError("out of memory (simulated)")
        return original(config, warn)

    monkeypatch.setattr(study, "train_run", failing_seed_1)
    spec, out, lines = study.load_study_spec(config=spec_file), tmp_path / "study", []
    failed = slurm.run_study_on_slurm(spec, data, out, cluster="debug", warn=lines.append)
    assert len(failed) == 1 and failed[0].startswith("t2t-d1-f1-s1: job ") and "out of memory (simulated)" in failed[0]
    assert " log " in failed[0] and str(out / "slurm") in failed[0]
    assert any(line.startswith("[2/2] t2t-d1-f1-s1: job") for line in lines)
    assert len(study.collect(spec, out)) == 1  # the finished run is collected
    assert slurm.run_study_on_slurm(spec, data, out, resume=True, cluster="debug", warn=lines.append) == []
    assert calls == [0, 1, 1] and len(study.collect(spec, out)) == 2


def test_local_executor_runs_each_job_in_its_own_process(data, spec_file, local_study, tmp_path):
    spec = study.load_study_spec(config=spec_file, seeds=[1])
    failed = slurm.run_study_on_slurm(spec, data, tmp_path / "study", cluster="local", warn=lambda line: None)
    assert failed == []
    ours = study.collect(spec, tmp_path / "study")
    pd.testing.assert_frame_equal(ours[SAME].reset_index(drop=True),
                                  local_study[local_study["seed"] == 1][SAME].reset_index(drop=True))


def test_slurm_settings_reach_the_executor_and_are_checked(tmp_path, srun_on_path):
    settings = slurm.slurm_settings({"partition": "gpu", "gpus": 4, "sbatch": {"qos": "high"}},
                                    {"time_minutes": 30, "mem_gb": 64.0})
    found = slurm.executor(tmp_path, settings, cluster="slurm")
    params = found._executor.parameters  # noqa: SLF001 (submitit has no public reader of its parameters)
    assert (params["partition"], params["gpus_per_node"], params["ntasks_per_node"], params["time"]) == \
        ("gpu", 4, 4, 30)
    assert params["signal_delay_s"] == slurm.PREEMPT_WARNING_S and params["additional_parameters"] == {"qos": "high"}
    with pytest.raises(ConfigError, match="slurm: gpus=-1"):
        SlurmConfig(gpus=-1)
    with pytest.raises(ConfigError, match="unknown setting 'partitoin'"):
        SlurmConfig.check_some({"partitoin": "gpu"}, "the spec's [slurm] table")


def test_a_run_asks_for_gpus_on_several_nodes(srun_on_path):
    settings = slurm.slurm_settings({"nodes": 2, "gpus": 4}, {"cpus": 8})
    params = slurm.executor("out", settings, cluster="slurm")._executor.parameters  # noqa: SLF001
    assert (params["nodes"], params["gpus_per_node"], params["ntasks_per_node"], params["cpus_per_task"]) == \
        (2, 4, 4, 8)  # 8 processes, one per GPU: one DDP run
    cpu = slurm.executor("out", SlurmConfig(nodes=3), cluster="slurm")._executor.parameters  # noqa: SLF001
    assert (cpu["nodes"], cpu["ntasks_per_node"]) == (3, 1) and "gpus_per_node" not in cpu
    with pytest.raises(ConfigError, match="slurm: nodes=0"):
        SlurmConfig(nodes=0)
    with pytest.raises(ConfigError, match="nodes"):
        slurm.slurm_settings({"nodes": "two"})


def test_a_job_with_two_tasks_is_one_ddp_run_reported_once(data, tmp_path):
    """The local executor starts a job's tasks as Slurm would (one node): 2 "GPUs" are 2 processes here, on the CPU
    (gloo); submitit's TorchDistributedEnvironment joins them, and rank 0's summary is the run's."""
    path = write_spec(tmp_path, seeds=[0], train={**TINY["train"], "device": "cpu"})  # a GPU machine has maybe one
    spec, out, lines = study.load_study_spec(config=path), tmp_path / "study", []
    assert slurm.run_study_on_slurm(spec, data, out, settings=SlurmConfig(gpus=2, cpus=1), cluster="local",
                                    warn=lines.append) == []
    summary = study.read_summary(out / "runs" / "t2t-d1-f1-s0", out)
    assert (summary["world_size"], summary["global_batch"]) == (2, 8)
    assert any(line.startswith("[1/1] t2t-d1-f1-s0: ") for line in lines) and len(study.collect(spec, out)) == 1


def test_cli_study_on_slurm_reports_failures_after_the_finished_runs_report(data, spec_file, tmp_path, monkeypatch,
                                                                           capsys, no_post_mortem):
    from bench.cli import main

    original = slurm.executor
    monkeypatch.setattr(slurm, "executor", lambda out, settings, cluster=None: original(out, settings, "debug"))
    monkeypatch.setattr(study, "train_run", lambda config, warn: (_ for _ in ()).throw(RuntimeError("boom")))
    code = main(["study", "--config", str(spec_file), "--data", str(data), "--out", str(tmp_path / "s"),
                 "--launcher", "slurm"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and "2 run(s) did not finish, e.g. t2t-d1-f1-s0: job" in err[-1] and "--resume --launcher slurm" \
        in err[-1]
    with pytest.raises(ResultsError):
        study.collect(study.load_study_spec(config=spec_file), tmp_path / "s")


def test_srun_tasks_get_torchruns_variables_from_slurms():
    from bench.accuracy.distributed import from_slurm

    step = {"SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_STEP_NODELIST": "gpu7",
            "SLURM_JOB_ID": "123456"}
    assert from_slurm(step) == {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu7",
                                "MASTER_PORT": str(20000 + 123456 % 20000)}
    assert from_slurm({**step, "WORLD_SIZE": "4"}) == {}  # torchrun's own win
    batch_script = {"SLURM_NTASKS": "4", "SLURM_PROCID": "0", "SLURM_JOB_ID": "1"}  # no srun step: one process
    assert from_slurm(batch_script) == {}


def test_a_study_toml_chooses_the_slurm_launcher_and_its_settings(data, tmp_path, monkeypatch):
    from bench.cli import main

    path = tmp_path / "spec.toml"
    path.write_text(tomli_w.dumps({**TINY, "seeds": [0], "launcher": "slurm", "slurm": {"cpus": 1, "partition": "x"}}))
    chosen = []
    monkeypatch.setattr(slurm, "run_study_on_slurm", lambda spec, data, out, resume, overwrite, settings:
                        chosen.append(settings) or [])
    monkeypatch.setattr("bench.report.study.write_study_report", lambda spec, out: "")
    assert main(["study", "--config", str(path), "--data", str(data), "--out", str(tmp_path / "s"),
                 "--slurm-partition", "y"]) == 0
    assert chosen == [SlurmConfig(cpus=1, partition="y")]  # the flag over the table
    with pytest.raises(ConfigError, match="unknown setting 'cpu' in the study spec's \\[slurm\\] table; did you mean"):
        slurm.slurm_settings({"cpu": 1})


def test_each_arm_asks_for_its_own_resources_one_job_array_per_set(data, tmp_path, monkeypatch, no_post_mortem,
                                                                  srun_on_path):
    """An arm's [arms.slurm] table over the study's settings: runs of one set of resources share a job array (one
    sbatch script), each run's job and resources are recorded in study.json, and --resume (which reads the study's
    own record) asks for the same again."""
    wide = {**TINY["arms"][0], "name": "t2t-2n", "slurm": {"nodes": 2, "gpus": 4, "time_minutes": 30,
                                                            "sbatch": {"constraint": "a100"}}}
    path = write_spec(tmp_path, seeds=[0], arms=[TINY["arms"][0], wide], slurm={"cpus": 3, "sbatch": {"qos": "high"}})
    spec, out, lines = study.load_study_spec(config=path), tmp_path / "study", []
    asked, original = [], slurm.executor

    def debug_executor(out, settings, cluster=None):  # the resources a job array asks for; run here
        asked.append(original(out, settings, "slurm")._executor.parameters)  # noqa: SLF001
        return original(out, settings, "debug")

    monkeypatch.setattr(slurm, "executor", debug_executor)
    first, train_run = [], study.train_run
    monkeypatch.setattr(study, "train_run", lambda config, warn: (
        first.append(config.out) or (_ for _ in ()).throw(RuntimeError("pre-empted (simulated)"))
        if "t2t-2n" in config.out and not first else train_run(config, warn)))
    settings = slurm.slurm_settings(spec.source["slurm"], {"cpus": 2})  # a flag over the spec's table
    failed = slurm.run_study_on_slurm(spec, data, out, settings=settings, cluster="debug", warn=lines.append)
    assert len(failed) == 1 and failed[0].startswith("t2t-2n-d1-f1-s0: job ")
    study_wide, own = {"qos": "high"}, {"qos": "high", "constraint": "a100"}  # the arm's sbatch merged by key
    assert [(p["nodes"], p.get("gpus_per_node"), p["ntasks_per_node"], p["cpus_per_task"], p["time"],
             p["additional_parameters"]) for p in asked] == [(1, None, 1, 2, 1440, study_wide), (2, 4, 4, 2, 30, own)]
    assert sum("1 of 2 runs submitted as job array" in line for line in lines) == 2
    jobs = read_back(out / study.STUDY_FILE, "")[study.SLURM_JOBS]
    assert {name: (job["nodes"], job["gpus"], job["cpus"], job["time_minutes"], job["sbatch"])
            for name, job in jobs.items()} == {"t2t-d1-f1-s0": (1, 0, 2, 1440, study_wide),
                                               "t2t-2n-d1-f1-s0": (2, 4, 2, 30, own)}
    assert jobs["t2t-d1-f1-s0"]["job_id"] != jobs["t2t-2n-d1-f1-s0"]["job_id"]

    recorded, _ = study.recorded_spec(out)  # --resume: the arms' resources from the study's record
    asked.clear()
    assert slurm.run_study_on_slurm(recorded, data, out, resume=True, settings=settings, cluster="debug",
                                    warn=lines.append) == []
    assert [(p["nodes"], p["ntasks_per_node"]) for p in asked] == [(2, 4)]  # only the unfinished run, as before
    again = read_back(out / study.STUDY_FILE, "")[study.SLURM_JOBS]
    assert again["t2t-d1-f1-s0"] == jobs["t2t-d1-f1-s0"] and again["t2t-2n-d1-f1-s0"]["job_id"] != \
        jobs["t2t-2n-d1-f1-s0"]["job_id"]
    assert len(study.collect(recorded, out)) == 2


def test_an_arms_slurm_table_is_checked_when_the_spec_is_read(tmp_path):
    bad = {**TINY["arms"][0], "slurm": {"nodes": 0}}
    with pytest.raises(ConfigError, match=r"study arm 't2t''s \[arms.slurm\] table: slurm: nodes=0 is not allowed"):
        study.load_study_spec(config=write_spec(tmp_path, arms=[bad]))
    with pytest.raises(ConfigError, match=r"unknown setting 'node' in study arm 't2t''s \[arms.slurm\] table; did"):
        study.load_study_spec(config=write_spec(tmp_path, arms=[{**bad, "slurm": {"node": 2}}]))
    with pytest.raises(ConfigError, match=r"slurm=3 is not allowed; it must be a table"):
        study.load_study_spec(config=write_spec(tmp_path, slurm=3))
