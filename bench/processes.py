"""Child processes that never outlive the vitbench process that started them, and signals that end
work cleanly. Imports nothing of the project.

- `worker_pool(n)`: a spawn-context `multiprocessing.Pool` whose workers ask Linux to SIGKILL them
  when their parent dies (`prctl(PR_SET_PDEATHSIG)`), whatever killed it, SIGKILL included. When the
  block ends with an exception (Ctrl-C, SIGTERM, a failed task) the workers are terminated at once,
  instead of finishing the queue. A terminated worker unwinds (SIGTERM raises SystemExit in it), so
  its atomic writes remove their temporary files and its folder lock is released; and whatever the task does
  with that SystemExit (a cleanup that raises its own error replaces it, and the pool's loop would then wait
  forever for a task the terminating parent never sends), the kernel ends the worker `UNWIND_SECONDS` later.
- `set_parent_death_signal()`: the same request for any child, e.g. as `subprocess.run`'s `preexec_fn`.
- `sigterm_interrupts()`: while it is active, SIGTERM raises `Terminated` (a KeyboardInterrupt) in
  the main thread, so a terminated command cleans up as after Ctrl-C.
"""
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
UNWIND_SECONDS = 5  # a terminated worker's time to run its `finally` blocks (milliseconds of file removal)


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered as an interrupt so that every `finally` runs."""


def raise_terminated(signum, frame):
    raise Terminated(f"signal {signum}")


@contextlib.contextmanager
def sigterm_interrupts():
    """SIGTERM raises `Terminated` inside the block (main thread only: Python delivers signals there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_on_sigterm(signum, frame):
    """Unwind, and be gone in UNWIND_SECONDS however the unwinding ends: SIGALRM's default action ends the process
    even if a task caught the SystemExit, or a cleanup replaced it with an error the pool's loop catches."""
    signal.alarm(UNWIND_SECONDS)
    sys.exit(128 + signum)


def set_parent_death_signal():
    """Ask Linux to SIGKILL this process when its parent dies (kept across exec; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def die_with_parent(parent_pid):
    """Pool initializer: SIGKILL this worker when its parent dies; leave Ctrl-C to the parent, which terminates
    the pool; unwind on SIGTERM (the pool's terminate) so `finally` blocks and atomic writes clean up."""
    set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the request above took effect
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # an ignored SIGALRM survives exec; exit_on_sigterm needs it


@contextlib.contextmanager
def worker_pool(processes):
    """A `multiprocessing.Pool` of `processes` spawned workers that die with this process (see the module)."""
    pool = multiprocessing.get_context("spawn").Pool(processes, initializer=die_with_parent,
                                                     initargs=(os.getpid(),))
    try:
        with sigterm_interrupts():
            yield pool
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
