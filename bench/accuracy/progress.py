"""What a long run shows while it works: tqdm's bar on a terminal; elsewhere (stderr in a file, a
study's worker) plain lines, never `\r` frames: one every `every` steps and one per epoch, each with
rate, lr, loss and the run's ETA.
"""
import sys
import time

from tqdm import tqdm

STEP_LINES_EVERY = 50  # steps between two plain progress lines when stderr is not a terminal


def duration(seconds):
    """'42 s', '7 min 5 s', '2 h 03 min'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class StepProgress:
    """Progress of one epoch's steps. `mode`: "auto" (a bar on a terminal, else plain lines), "epochs" (nothing
    per step: the caller prints epoch lines) or None (silent)."""

    def __init__(self, total, description, mode="auto", warn=print, stream=None, every=None):
        stream, every = stream or sys.stderr, every or STEP_LINES_EVERY
        self.lines = mode == "auto" and not stream.isatty()
        self.bar = tqdm(total=total, desc=description, leave=False, dynamic_ncols=True, file=stream,
                        disable=mode != "auto" or self.lines)
        self.total, self.description, self.warn, self.every = total, description, warn, every
        self.start = time.perf_counter()

    def update(self, step, loss, lr, images_per_s, eta_s):
        """After step `step` (1-based) of this epoch; `eta_s`: seconds left in the whole run."""
        self.bar.update(1)
        if step % 10 == 1:
            self.bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}", img_s=f"{images_per_s:.0f}", eta=duration(eta_s))
        if self.lines and (step % self.every == 0 or step == self.total):
            self.warn(f"{self.description} step {step}/{self.total}: loss {loss:.4f}, lr {lr:.2e}, "
                      f"{images_per_s:.0f} img/s, ETA {duration(eta_s)}")

    def close(self):
        self.bar.close()
