"""Pre-emption: SIGUSR1 (Slurm's warning before a time limit or a pre-emption, `--signal=USR1@90`) or SIGUSR2
(submitit's choice of that warning, `SUBMITIT_PREEMPT_SIGNAL`) asks a run to save a checkpoint at the next update
and stop; submitit's own handler then requeues the job.

The signal is only recorded when it arrives: the training loop saves at an update boundary, where the
weights, optimiser, RNGs and loader position agree (a save from inside the handler could catch an update
half done). After the save, a handler that was installed before ours (submitit's, which calls the job's
`checkpoint()`, requeues it and exits) is called; without one the run stops with `Preempted`.
"""
import signal
import threading

from bench.accuracy import distributed

SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


class Preempted(SystemExit):
    """The run saved a checkpoint on SIGUSR1/SIGUSR2 and stopped (exit status 1, the message on stderr)."""


class Preemption:
    """While entered (in the main thread), SIGUSR1 and SIGUSR2 set `requested` instead of ending the process."""

    def __init__(self):
        self.requested, self.previous = False, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            self.previous = {number: signal.signal(number, self.record) for number in SIGNALS}
        return self

    def __exit__(self, *exc):
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        self.previous = {}

    def record(self, signum, frame):
        self.requested = True

    def stop(self, context, where):
        """After the checkpoint is saved: hand the signal on to submitit's handler (it calls the job's `checkpoint()`,
        requeues the job and exits), or stop the run."""
        distributed.barrier(context)  # rank 0 has written the checkpoint
        handed = next(((number, handler) for number, handler in self.previous.items() if callable(handler)), None)
        self.__exit__()
        if handed and context.is_main:
            handed[1](handed[0], None)
        raise Preempted(f"a pre-emption signal: saved a checkpoint at {where} and stopped; `vitbench train --out OUT "
                        "--resume` continues the run exactly where it stopped")
