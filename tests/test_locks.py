"""Folder locks (bench.outputs.folder_lock): the kernel's flock decides, the holder file only names the holder."""
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from bench.errors import ResultsError
from bench.outputs import HOLDER, LOCK, folder_lock, take_lock
from tests.harness_helpers import REPO_ROOT


@contextlib.contextmanager
def held_by_child(out, kind="sweep"):
    """A live child process holding `out`'s lock; yields it, and SIGKILLs it at the end."""
    code = (f"from bench.outputs import folder_lock; import time\nwith folder_lock({str(out)!r}, {kind!r}):\n"
            "    print('locked', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def refusal(pid, kind="sweep"):
    host = re.escape(socket.gethostname())
    return rf"in use by another vitbench process \({kind}, pid {pid} on host {host}\)"


def test_a_lock_held_by_a_live_process_is_refused_naming_its_host_and_pid(tmp_path):
    out = tmp_path / "sw"
    with held_by_child(out) as holder:
        with pytest.raises(ResultsError, match=refusal(holder.pid)) as refused:
            with folder_lock(out, "run"):
                pass
        assert "\n" not in str(refused.value)
        (out / HOLDER).unlink()  # the name is for the message only: the lock stays
        with pytest.raises(ResultsError, match=r"in use by another vitbench process \(holder unknown\)"):
            with folder_lock(out, "run"):
                pass
        assert out.is_dir()  # a refusal never removes the holder's folder


def test_a_lock_whose_holder_was_sigkilled_is_free_at_once(tmp_path):
    out = tmp_path / "sw"
    with held_by_child(out) as holder:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        assert (out / LOCK).exists() and json.loads((out / HOLDER).read_text())["pid"] == holder.pid  # left behind
        with folder_lock(out, "run"):  # no wait, no clean-up step: the kernel freed the lock with the process
            assert json.loads((out / HOLDER).read_text()) == {"host": socket.gethostname(), "pid": os.getpid(),
                                                              "kind": "run"}
    assert not (out / LOCK).exists() and not (out / HOLDER).exists()


def test_a_stale_holder_file_does_not_block(tmp_path):
    """Shared storage: a holder file naming a live process (here, on another host) means nothing without the lock."""
    out = tmp_path / "sw"
    out.mkdir()
    (out / LOCK).write_text("")
    (out / HOLDER).write_text(json.dumps({"host": "elsewhere", "pid": os.getppid(), "kind": "study"}))
    with folder_lock(out, "sweep"):
        assert json.loads((out / HOLDER).read_text())["pid"] == os.getpid()
    assert sorted(os.listdir(out)) == []


def test_a_second_lock_in_the_same_process_is_refused(tmp_path):
    out = tmp_path / "sw"
    with folder_lock(out, "study"), pytest.raises(ResultsError, match=refusal(os.getpid(), "study")):
        with folder_lock(out, "report"):
            pass
    assert not out.exists()  # made for the lock only


def test_release_leaves_the_lock_of_a_folder_made_again_alone(tmp_path):
    """Work that removed its own folder (a failed start) must not delete the lock another process took since."""
    out = tmp_path / "run"
    with folder_lock(out, "run"):
        shutil.rmtree(out)
        out.mkdir()
        other, _ = take_lock(out, "run")  # stands in for another process: its own file descriptor
    try:
        assert (out / LOCK).exists() and json.loads((out / HOLDER).read_text())["kind"] == "run"
    finally:
        other.release()
