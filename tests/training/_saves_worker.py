"""A hand-written torch loop (the torch template's model and data) saving with
``job.save_state`` every 8 steps and ``checkpoint(done=step)``, resumed from the store;
SIGKILLed at its ``kill_at``-th chunk write (0: never), which is inside an upload.
Writes the final state_dict to ``out`` when it finishes."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "templates"))

from support.faulty import Wrapped  # noqa: E402
from torch_training import BATCH, EPOCHS, SAMPLES, make_data, make_model, train_step  # noqa: E402

from sessionkit import Job  # noqa: E402
from sessionkit.store.local import LocalStore  # noqa: E402


class KillAtChunk(Wrapped):
    """SIGKILLs this process at its ``at``-th chunk write, before it lands."""

    def __init__(self, inner, at: int) -> None:
        super().__init__(inner)
        self.at, self.count, self._lock = at, 0, threading.Lock()

    def write(self, op, key, do):
        if "/chunks/" in key and op != "delete":
            with self._lock:
                self.count += 1
                if self.count == self.at:
                    os.kill(os.getpid(), signal.SIGKILL)
        return do()


def main(store_path: str, out: str, kill_at: str) -> None:
    model, optimizer, scheduler = make_model()
    total = EPOCHS * (SAMPLES // BATCH)
    x, y = make_data()
    job = Job(KillAtChunk(LocalStore(store_path), int(kill_at)), "train", total=total)
    extra = job.load_state(model=model, optimizer=optimizer, scheduler=scheduler)
    step = 0 if extra is None else extra["step"]
    assert step == job.done, (step, job.done)
    print(f"start {step}", flush=True)
    job.set_status("running")
    while step < total:
        train_step(model, optimizer, scheduler, step, x, y)
        step += 1
        if step % 8 == 0:
            job.save_state(model=model, optimizer=optimizer, scheduler=scheduler, extra={"step": step})
            job.checkpoint(done=step)
    job.set_status("completed")
    torch.save(model.state_dict(), out)
    print("done", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
