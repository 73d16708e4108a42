"""Training runs for the integration tests, one process each: ``alone`` (no sessionkit:
the reference), ``primary`` (a Primary on a scaled clock whose handover phase comes
mid-training) and ``backup`` (watches, takes over, finishes from the store).

Every training step appends the sample ids of its batch to a log (one line a step), and
the final weights are saved to ``<out>/final.pt``, so the tests can check that the two
halves of a handed-over run are exactly the reference run: same batches, no step twice or
missing, equal weights.

    python _train.py <framework> <role> <store url> <log> <out> [scale max_runtime]

Roles: alone, primary, backup (a handover on a scaled clock), stop-at-N and rerun (a
run whose handover phase begins exactly at step N, then a re-run that finishes it), and
real-clock (a Primary on the system clock, far from its handover phase: the tests stop it
with a real SIGTERM and run it again), and job (a Job alone, stopped by SIGTERM too).
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "torch")  # the backend installed with the others

SEED = 7
SAMPLES, BATCH, EPOCHS = 48, 4, 3  # 12 steps an epoch, 36 in all
STEP_SECONDS = 0.12  # each step also sleeps, so a handover can come mid-training
# The lease's ttl on the scaled clock. At 120x the default 60 s is half a real second, which
# leaves each lease write 0.13 s: a loaded CI machine took longer and the lease was lost
# (a timing limit, not what these tests check). 600 s gives each write 1.3 s of real time
# and the backup a 0.7 s poll, still well inside the 4 s the primary trains after the
# handover phase begins.
TTL = 600.0


GUARD: dict = {}  # more arguments for the callback: the session of a stop-at-N run
STOP: dict = {"at": None, "clock": None, "steps": 0}  # stop-at-N: the step whose end is in the handover phase


def log_batch(log_path: str, ids) -> None:
    with open(log_path, "a") as fh:
        fh.write(" ".join(str(int(i)) for i in ids) + f" pid={os.getpid()}\n")
    STOP["steps"] += 1
    if STOP["steps"] == STOP["at"]:
        STOP["clock"].advance(3600.0)  # the runtime's handover phase begins during this step
    time.sleep(STEP_SECONDS)


def make_run(role: str, url: str, scale: float, max_runtime: float):
    """What the callback is given: None (alone), a Primary, or the Primary a Backup became;
    for ``stop-at-N`` a Job with a Session whose handover phase begins at step N (a fake
    clock moved on by the step itself), for ``rerun`` the same Job run again."""
    if role == "alone":
        return None
    if role == "job":  # no Primary, no Session: only the framework's own SIGTERM handling
        from sessionkit import Job

        print("holding 0", flush=True)
        return Job(url, "train")
    if role.startswith("stop-at-") or role == "rerun":
        from sessionkit import Job, Session
        from sessionkit.clock import FakeClock
        from sessionkit.runtimes import Runtime

        if role != "rerun":
            STOP["at"], STOP["clock"] = int(role[len("stop-at-"):]), FakeClock()
            GUARD["session"] = Session(url, "primary", runtime=Runtime(max_runtime=4000.0), clock=STOP["clock"])
        return Job(url, "train")
    from sessionkit.clock import ScaledClock, SystemClock
    from sessionkit.runtimes import Runtime
    from sessionkit.handover import Backup, Primary

    if role == "real-clock":
        primary = Primary(url, "train", runtime=Runtime(max_runtime=12 * 3600.0), clock=SystemClock(),
                          label=f"pid {os.getpid()}")
        print(f"holding {primary.lease.token}", flush=True)
        return primary
    clock = ScaledClock(scale, base=SystemClock())
    if role == "primary":
        primary = Primary(url, "train", runtime=Runtime(max_runtime=max_runtime), clock=clock, ttl=TTL, label="A")
    else:
        backup = Backup(url, "B", clock=clock, ttl=TTL, runtime="local")
        print("watching", flush=True)
        primary = backup.watch(timeout=None)
    print(f"holding {primary.lease.token}", flush=True)
    return primary


def transformers_run(run, log_path: str, out: str):
    import torch
    from transformers import Trainer, TrainingArguments

    class Samples(torch.utils.data.Dataset):
        def __init__(self):
            g = torch.Generator().manual_seed(0)
            self.x = torch.randn(SAMPLES, 8, generator=g)
            self.y = self.x @ torch.arange(8.0) + 0.1 * torch.randn(SAMPLES, generator=g)

        def __len__(self):
            return SAMPLES

        def __getitem__(self, i):
            return {"x": self.x[i], "labels": self.y[i], "idx": torch.tensor(i)}

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(8, 1)
            self.drop = torch.nn.Dropout(0.2)  # uses the RNG: resumes must restore it

        def forward(self, x, labels, idx):
            log_batch(log_path, idx)
            pred = self.lin(self.drop(x)).squeeze(-1)
            return {"loss": torch.nn.functional.mse_loss(pred, labels)}

    torch.manual_seed(SEED)
    model = Tiny()
    args = TrainingArguments(output_dir=os.path.join(out, "hf"), per_device_train_batch_size=BATCH,
                             num_train_epochs=EPOCHS, learning_rate=0.05, seed=SEED, save_strategy="no",
                             report_to="none", use_cpu=True, disable_tqdm=True, logging_strategy="no",
                             remove_unused_columns=False, dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=Samples())
    if run is None:
        trainer.train()
    else:
        from sessionkit.integrations.transformers import SessionkitCallback

        SessionkitCallback(run, **GUARD).train(trainer)
    return model


class _Samples:
    """The same 48 samples for every framework: x (8 features), a noisy linear y, the index."""

    def __init__(self):
        import torch

        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(SAMPLES, 8, generator=g)
        self.y = self.x @ torch.arange(8.0) + 0.1 * torch.randn(SAMPLES, generator=g)


def lightning_run(run, log_path: str, out: str):
    import lightning.pytorch as pl
    import torch

    from sessionkit.integrations.lightning import ResumableLoader

    data = _Samples()

    class Samples(torch.utils.data.Dataset):
        def __len__(self):
            return SAMPLES

        def __getitem__(self, i):
            return data.x[i], data.y[i], torch.tensor(i)

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(8, 1)
            self.drop = torch.nn.Dropout(0.2)  # uses the RNG: resumes must restore it

        def training_step(self, batch, batch_idx):
            x, y, idx = batch
            log_batch(log_path, idx)
            return torch.nn.functional.mse_loss(self.lin(self.drop(x)).squeeze(-1), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    torch.manual_seed(SEED)
    model = Tiny()
    loader = ResumableLoader(Samples(), batch_size=BATCH, shuffle=True)
    callbacks = []
    if run is not None:
        from sessionkit.integrations.lightning import SessionkitCallback

        callbacks.append(SessionkitCallback(run, **GUARD))
    trainer = pl.Trainer(max_epochs=EPOCHS, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=out,
                         callbacks=callbacks)
    if run is None:
        trainer.fit(model, train_dataloaders=loader)
    else:
        callbacks[0].fit(trainer, model, train_dataloaders=loader)
    return model


def keras_run(run, log_path: str, out: str):
    import keras
    import numpy as np
    import torch

    from sessionkit.integrations.keras import ResumableBatches

    class Tiny(keras.Model):
        """Reads the sample id from a 9th column, so its train step can log the batch."""

        def __init__(self):
            super().__init__()
            self.drop = keras.layers.Dropout(0.2)  # draws from its seed generator: resumes must restore it
            self.lin = keras.layers.Dense(1)

        def call(self, x, training=False):
            return self.lin(self.drop(x[:, :8], training=training))[:, 0]

        def train_step(self, data):
            log_batch(log_path, data[0][:, 8])
            return super().train_step(data)

    data = _Samples()
    keras.utils.set_random_seed(SEED)
    x = np.concatenate([data.x.numpy(), np.arange(SAMPLES, dtype="float32")[:, None]], axis=1)
    batches = ResumableBatches(x, data.y.numpy(), batch_size=BATCH)
    model = Tiny()
    model(x[:1])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse")
    if run is None:
        model.fit(batches, epochs=EPOCHS, shuffle=False, verbose=0, callbacks=[batches.follow_epochs()])
    else:
        from sessionkit.integrations.keras import SessionkitCallback

        SessionkitCallback(run, folder=os.path.join(out, "keras"), **GUARD).fit(model, batches, epochs=EPOCHS, verbose=0)

    class Weights:
        def state_dict(self):
            return {w.path: torch.tensor(np.array(w)) for w in model.weights}

    return Weights()


def main(framework: str, role: str, url: str, log_path: str, out: str, scale: str = "1",
         max_runtime: str = "0") -> None:
    import torch

    __import__(framework)  # before the runtime's clock starts: its handover phase comes mid-training
    run = make_run(role, url, float(scale), float(max_runtime))
    model = globals()[f"{framework}_run"](run, log_path, out)
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, os.path.join(out, "final.pt"))
    result = {"pid": os.getpid()}
    if hasattr(run, "handed_over"):
        result.update(status=run.job.status, handed_over=run.handed_over, done=run.job.done,
                      state=run.handover_view.status)
    elif run is not None:
        result.update(status=run.status, done=run.done)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
