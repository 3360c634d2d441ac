"""`vitbench study --launcher slurm`: each run of a study is one Slurm job, the study's runs one job array, through
submitit (as DeiT's, DINO's and MAE's `run_with_submitit.py`).

- The study folder's lock is held for the bookkeeping only (folder checks, study.json, which runs are left,
  the submission); each job takes its own run folder's lock, so runs on many nodes write one study.
- Paths are made absolute first: a job starts in another process, maybe on another node, of a shared filesystem.
- submitit's pickles and logs go to OUT/slurm/, which --overwrite and the folder checks know as vitbench's own.
- A job runs `study.train_run`: a run with a last.pth resumes from it. Slurm sends SIGUSR1 90 s before the time
  limit (or a pre-emption); the run saves a mid-epoch checkpoint and hands the signal to submitit, which calls
  `RunJob.checkpoint` (the same run again) and requeues the job, and the requeued job resumes exactly.
- A job with several tasks (GPUs, nodes) is one DDP run: torchrun's variables are taken from submitit's.
- An arm may ask for its own resources (`[arms.slurm]` over the study's settings); one job array holds runs of one
  set of resources (an array is one sbatch script), so a study goes out as one array per distinct set. Each run's
  job id and resources are recorded in study.json.
- Failed jobs are reported with their job id, state and log; the runs that finished are still collected, and
  `--resume` submits only the runs without a finished summary.
"""
import json
import os
import time
from pathlib import Path

import torch

from bench.accuracy import distributed, study
from bench.accuracy.data import log
from bench.configs import SlurmConfig
from bench.outputs import folder_lock, read_back
from models.atomic import atomic_write_text

SLURM_FOLDER = "slurm"  # OUT/slurm/: submitit's job pickles and logs
PREEMPT_WARNING_S = 90  # SIGUSR1 this long before the time limit: a checkpoint takes seconds, a slow disk more
SUBMITTER = distributed.Context(0, 1, 0, torch.device("cpu"))  # study.json's provenance: where it was submitted
POLL_S = 2.0  # how often finished jobs are looked for (submitit asks sacct at most once a minute by itself)


class RunJob:
    """One study run inside its Slurm job (every task of it). submitit pickles this object with the run's config."""

    def __call__(self, config):
        import submitit

        if os.environ.get("SUBMITIT_EXECUTOR") in ("slurm", "local") and submitit.JobEnvironment().num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        try:
            return study.train_run(config, study.tagged(log, Path(config.out).name))
        finally:
            distributed.teardown()

    def checkpoint(self, config):
        """Called by submitit on SIGUSR1, after the run saved its checkpoint: requeue the same run; it resumes."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, config)


def slurm_settings(source=None, flags=None):
    """SlurmConfig from a study spec's [slurm] table, then the --slurm-* flags (each arm's own table goes over
    these: `over`)."""
    table = SlurmConfig.check_some(dict(source or {}), "the study spec's [slurm] table")
    return over(over(SlurmConfig(), table), flags or {})


def over(settings, table):
    """`settings` with `table`'s over them, sbatch key by key (as every source of settings merges a table)."""
    values = settings.as_dict()
    return SlurmConfig(**{**values, **{key: {**values[key], **value} if isinstance(value, dict) else value
                                       for key, value in table.items()}})


def arrays(spec, todo, settings):
    """[(resources, runs)]: the runs of `todo` grouped by the resources their arms ask for, in the study's order.
    A job array is one sbatch script, one set of resources for every task of it, so each set is one array."""
    by_arm = {variant.arm: over(settings, variant.slurm) for variant in spec.variants}  # the arm's own table wins
    arm_of = {study.run_name(*run): run[0].arm for run in spec.runs()}
    groups = {}
    for run in todo:
        resources = by_arm[arm_of[run[1]]]
        groups.setdefault(json.dumps(resources.as_dict(), sort_keys=True), (resources, []))[1].append(run)
    return list(groups.values())


def describe(resources):
    return (f"{resources.nodes} node(s) x {resources.gpus} GPU(s), {resources.cpus} CPU(s) a process, "
            f"{resources.time_minutes} min")


def record_jobs(out, submitted):
    """Each submitted run's job id and resources in study.json (beside the spec, whose runs they are); `submitted`:
    [(resources, runs, jobs)]."""
    path = out / study.STUDY_FILE
    record = read_back(path, "the study's record is lost: run it again into a new --out")
    jobs = record.setdefault(study.SLURM_JOBS, {})
    for resources, runs, array in submitted:
        for (_, name, _), job in zip(runs, array):
            jobs[name] = {"job_id": job.job_id, **{k: v for k, v in resources.as_dict().items() if v is not None}}
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")


def executor(out, settings, cluster=None):
    """submitit's AutoExecutor for the study in `out`; `cluster` "local" or "debug" runs the jobs here (tests)."""
    import submitit

    found = submitit.AutoExecutor(folder=Path(out) / SLURM_FOLDER, cluster=cluster)
    tasks = max(settings.gpus, 1)  # one process per GPU (DeiT's tasks_per_node); a CPU run is one process a node
    found.update_parameters(
        name=f"vitbench-{Path(out).name}", timeout_min=settings.time_minutes, nodes=settings.nodes,
        tasks_per_node=tasks, cpus_per_task=settings.cpus, slurm_signal_delay_s=PREEMPT_WARNING_S,
        **({"gpus_per_node": settings.gpus} if settings.gpus else {}),
        **({"mem_gb": settings.mem_gb} if settings.mem_gb else {}),
        **({"slurm_partition": settings.partition} if settings.partition else {}),
        **({"slurm_account": settings.account} if settings.account else {}),
        **({"slurm_array_parallelism": settings.max_running} if settings.max_running else {}),
        **({"slurm_additional_parameters": dict(settings.sbatch)} if settings.sbatch else {}),
    )
    return found


def failure(name, job, error):
    """One line: the run, its job id, its state and its log."""
    reason = str(error).strip().splitlines()
    return (f"{name}: job {job.job_id} {job.state} ({reason[-1] if reason else type(error).__name__}); log "
            f"{job.paths.stderr}")


def run_study_on_slurm(spec, data, out, resume=False, overwrite=False, settings=None, warn=log, cluster=None):
    """Submit the runs of `spec` without a finished summary, one job array per set of resources their arms ask for
    (`settings`, each arm's [arms.slurm] table over them), and wait for them; returns the failed runs as lines
    (empty: every run finished). The finished runs are reported as they end."""
    data, out = Path(data).resolve(), Path(out).resolve()  # jobs start elsewhere, maybe on another node
    settings = settings or SlurmConfig()
    arrays(spec, [], settings)  # every arm's resources checked before anything is written
    with folder_lock(out, "study"):  # bookkeeping only: each job locks its own run folder
        spec, todo = study.begin_study(spec, data, out, resume, overwrite, SUBMITTER)
        submitted = []
        for resources, runs in arrays(spec, todo, settings):
            array = executor(out, resources, cluster).map_array(RunJob(), [config for _, _, config in runs])
            submitted.append((resources, runs, array))
            record_jobs(out, submitted[-1:])  # at once: sbatch refusing a later array loses no job id of this one
    for resources, runs, array in submitted:
        warn(f"[study] {len(runs)} of {len(spec.runs())} runs submitted as job array {array[0].job_id.split('_')[0]} "
             f"({describe(resources)}); logs in {out / SLURM_FOLDER}")
    at_once = sum(min(resources.max_running or len(runs), len(runs)) for resources, runs, _ in submitted)
    tally = study.Tally(len(spec.runs()), len(todo), max(at_once, 1))
    named = {job.job_id: (index, name) for _, runs, array in submitted for job, (index, name, _) in zip(array, runs)}
    jobs = [job for _, _, array in submitted for job in array]
    failed = []
    for job, error in as_completed(jobs):
        index, name = named[job.job_id]
        try:
            if error:
                raise error
            summary = job.results()[0]  # task 0 (rank 0) of a job with several (nodes, GPUs)
        except Exception as error:  # failed, cancelled, killed, out of memory: the other runs go on
            failed.append(failure(name, job, error))
            warn(f"[{index}/{tally.total}] {failed[-1]}")
            tally.todo -= 1
            continue
        study.report_run(index, name, summary, tally, warn)
    return failed


def as_completed(jobs):
    """(job, None) as each job ends; (job, error) where asking whether it ended raised (the debug executor runs a
    job when asked, and raises its error there)."""
    pending = list(jobs)
    while pending:
        for job in list(pending):
            try:
                ended, error = job.done(), None
            except Exception as raised:
                ended, error = True, raised
            if ended:
                pending.remove(job)
                yield job, error
        if pending:
            time.sleep(POLL_S)
