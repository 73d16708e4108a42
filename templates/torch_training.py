"""A plain PyTorch training loop that survives the runtime: copy it and put in your model.

Run it; stop it (Ctrl-C, SIGTERM, the runtime's end, a pause request, or a planned
handover to a backup runtime); run it again here or on another runtime that opens the
same store: it goes on at the next batch with the same weights, optimizer, scheduler and
random number generators, as if it had never stopped.

    python torch_training.py --store sessionkit-state --job my-training

What makes that exact: the data order is a function of (seed, epoch) only, so the step
number says where in the data the loop is; ``guard.save_state`` saves model, optimizer,
scheduler and the RNGs with that step, and ``guard.load_state`` puts them all back.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from sessionkit.handover import Primary
from sessionkit.integrations import TrainingGuard

SEED, SAMPLES, BATCH, EPOCHS, SAVE_EVERY = 0, 256, 16, 4, 10


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    """Your data set (here: a fixed random regression problem)."""
    g = torch.Generator().manual_seed(SEED)
    x = torch.randn(SAMPLES, 8, generator=g)
    return x, x @ torch.arange(8.0) + 0.1 * torch.randn(SAMPLES, generator=g)


def batch_at(step: int, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch of global step ``step``: the epoch's order depends only on (seed, epoch)."""
    per_epoch = SAMPLES // BATCH
    epoch, i = divmod(step, per_epoch)
    order = torch.randperm(SAMPLES, generator=torch.Generator().manual_seed(SEED * 1000 + epoch))
    ids = order[i * BATCH:(i + 1) * BATCH]
    return x[ids], y[ids]


def make_model() -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """Your model, optimizer and scheduler."""
    torch.manual_seed(SEED)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(16, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    return model, optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=20, gamma=0.7)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, step: int,
               x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One optimizer step on the batch of global step ``step``; its loss."""
    bx, by = batch_at(step, x, y)
    loss = torch.nn.functional.mse_loss(model(bx).squeeze(-1), by)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="sessionkit-state", help="store folder or URL")
    parser.add_argument("--job", default="my-training", help="the job's name in the store")
    parser.add_argument("--out", default="", help="save the final weights here (a .pt file)")
    parser.add_argument("--step-seconds", type=float, default=0.0, help="slow each step down (for demos)")
    args = parser.parse_args(argv)

    model, optimizer, scheduler = make_model()
    total = EPOCHS * (SAMPLES // BATCH)
    x, y = make_data()

    primary = Primary(args.store, args.job, runtime="local", label="trainer")  # waits if another holds it
    guard = TrainingGuard(primary)
    step = guard.load_state(model=model, optimizer=optimizer, scheduler=scheduler)  # 0 on a first run
    print(f"starting at step {step} of {total}", flush=True)
    guard.begin(total)
    try:
        while step < total:
            loss = train_step(model, optimizer, scheduler, step, x, y)
            step += 1
            if args.step_seconds:
                time.sleep(args.step_seconds)
            stop = guard.should_stop()
            if stop or step % SAVE_EVERY == 0 or step == total or guard.should_save_now():
                guard.save_state(step, epoch=step / (SAMPLES // BATCH), model=model, optimizer=optimizer,
                                 scheduler=scheduler)
                print(f"saved step {step}", flush=True)
            if stop:
                break
    except BaseException as exc:  # an error fails the job, Ctrl-C pauses it; then raised as it was
        guard.end_by(exc)
        raise
    if args.out:
        torch.save(model.state_dict(), args.out)
    print(json.dumps({"step": step, "stopped": guard.reason, "loss": float(loss) if step else None}), flush=True)
    guard.end(completed=step >= total, step=step)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
