"""Training runs for the integration tests, one process each: ``alone`` (no sessionkit:
the reference), ``primary`` (a Primary on a scaled clock whose handover phase comes
mid-training) and ``backup`` (watches, takes over, finishes from the store).

Every training step appends the sample ids of its batch to a log (one line a step), and
the final weights are saved to ``<out>/final.pt``, so the tests can check that the two
halves of a handed-over run are exactly the reference run: same batches, no step twice or
missing, equal weights.

    python _train.py <framework> <role> <store url> <log> <out> [scale max_runtime]
"""

from __future__ import annotations

import json
import os
import sys
import time

SEED = 7
SAMPLES, BATCH, EPOCHS = 48, 4, 3  # 12 steps an epoch, 36 in all
STEP_SECONDS = 0.12  # each step also sleeps, so a handover can come mid-training
# The lease's ttl on the scaled clock. At 120x the default 60 s is half a real second, which
# leaves each lease write 0.13 s: a loaded CI machine took longer and the lease was lost
# (a timing limit, not what these tests check). 600 s gives each write 1.3 s of real time
# and the backup a 0.7 s poll, still well inside the 4 s the primary trains after the
# handover phase begins.
TTL = 600.0


def log_batch(log_path: str, ids) -> None:
    with open(log_path, "a") as fh:
        fh.write(" ".join(str(int(i)) for i in ids) + f" pid={os.getpid()}\n")
    time.sleep(STEP_SECONDS)


def make_run(role: str, url: str, scale: float, max_runtime: float):
    """What the callback is given: None (alone), a Primary, or the Primary a Backup became."""
    if role == "alone":
        return None
    from sessionkit import Runtime, ScaledClock, SystemClock
    from sessionkit.handover import Backup, Primary

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

        SessionkitCallback(run).train(trainer)
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

        callbacks.append(SessionkitCallback(run))
    trainer = pl.Trainer(max_epochs=EPOCHS, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=out,
                         callbacks=callbacks)
    if run is None:
        trainer.fit(model, train_dataloaders=loader)
    else:
        callbacks[0].fit(trainer, model, train_dataloaders=loader)
    return model


def main(framework: str, role: str, url: str, log_path: str, out: str, scale: str = "1",
         max_runtime: str = "0") -> None:
    import torch

    __import__(framework)  # before the runtime's clock starts: its handover phase comes mid-training
    run = make_run(role, url, float(scale), float(max_runtime))
    model = globals()[f"{framework}_run"](run, log_path, out)
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, os.path.join(out, "final.pt"))
    result = {"pid": os.getpid()}
    if run is not None:
        result.update(status=run.job.status, handed_over=run.handed_over, done=run.job.done,
                      state=run.state.status)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
