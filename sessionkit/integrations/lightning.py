"""Lightning: a ``Callback`` that makes ``Trainer.fit`` survive the runtime.

::

    from sessionkit.integrations.lightning import ResumableLoader, SessionkitCallback

    callback = SessionkitCallback(primary)        # or SessionkitCallback(job, session=...)
    trainer = L.Trainer(max_epochs=3, callbacks=[callback])
    loader = ResumableLoader(train_set, batch_size=32, shuffle=True)
    callback.fit(trainer, model, train_dataloaders=loader)   # trainer.fit(..., ckpt_path=...)

``callback.fit`` downloads the latest complete checkpoint from the store and resumes
from it with Lightning's own resume (model, optimizers, schedulers, global step, epoch,
loop progress), loaded with ``weights_only=True`` so nothing in it runs code (a
checkpoint holding other objects, hyperparameters of your own classes say, is refused
with torch's error; pass ``weights_only=False`` to ``callback.fit`` to trust the store).
Two things Lightning leaves to the user are done here:

- the random number generators (Python, numpy, torch CPU and CUDA) are saved in every
  checkpoint, as this callback's state, and restored when training starts again, so
  dropout and augmentation draw what the uninterrupted run would have;
- the data position: Lightning resumes a checkpoint saved mid-epoch at the next batch
  only when the train loader is stateful (``state_dict``/``load_state_dict``). A
  ``ResumableLoader`` is: a ``DataLoader`` whose shuffling generator is seeded from a
  seed and the epoch's number, and whose state (seed, epoch, batches handed out) goes
  into each checkpoint. On resume it draws the same order again and skips the batches
  already trained on at the sampler, without loading them.

At the handover phase (a backup ready), on a pause or cancel request, or on SIGTERM,
the callback saves a checkpoint at the end of the batch, puts it in the store, and sets
``trainer.should_stop``. After a SIGTERM Lightning then leaves ``fit`` by raising
``SIGTERMException`` (a ``SystemExit``): the job is paused and the lease released first,
so a backup takes over at once. An error in training fails the job and raises as usual.
Checkpoints the user's ``ModelCheckpoint`` writes stay local.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from ..handover.primary import Primary
from ..jobs import Job
from ..jobs.training_state import rng_state, set_rng_state
from ..sessions import Session
from .guard import CHECKPOINT_BLOB, TrainingGuard

try:
    import torch
    from torch.utils.data import DataLoader

    try:
        from lightning.pytorch import Callback
    except ImportError:
        from pytorch_lightning import Callback
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("sessionkit.integrations.lightning needs Lightning and torch: pip install lightning") from exc

__all__ = ["ResumableLoader", "SessionkitCallback"]

log = logging.getLogger("sessionkit.integrations")
CHECKPOINT_FILE = "last.ckpt"


class SessionkitCallback(Callback):  # type: ignore[misc]
    """Save and stop when sessionkit says, keep the checkpoint in the store, resume from it
    with the RNG states restored. ``folder``: where checkpoints are written before they
    go to the store (default ``<trainer.default_root_dir>/sessionkit-checkpoint``)."""

    def __init__(self, run: Union[Primary, Job], *, session: Optional[Session] = None,
                 blob: str = CHECKPOINT_BLOB, folder: "str | os.PathLike[str] | None" = None) -> None:
        self.guard = TrainingGuard(run, session=session, blob=blob)
        self.folder = None if folder is None else Path(folder)
        self._rng_to_restore: Optional[dict[str, Any]] = None

    def _folder(self, trainer: Any) -> Path:
        return self.folder or Path(trainer.default_root_dir) / "sessionkit-checkpoint"

    def resume_from(self, folder: "str | os.PathLike[str]") -> Optional[str]:
        """The path to give ``trainer.fit(ckpt_path=...)``: the latest checkpoint in the
        store, downloaded into ``folder``; None when there is none yet."""
        if not self.guard.resume_step:
            return None
        restored = self.guard.restore(folder)
        return None if restored is None else str(restored / CHECKPOINT_FILE)

    def fit(self, trainer: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
        """``trainer.fit`` from the store's latest checkpoint (or from the start)."""
        if "ckpt_path" in kwargs:
            raise TypeError("SessionkitCallback.fit chooses ckpt_path itself (the store's latest checkpoint); "
                            "call trainer.fit(...) directly to choose another")
        if self not in trainer.callbacks:
            raise ValueError("give the callback to the Trainer first: Trainer(..., callbacks=[callback]); "
                             "Lightning reads its state from checkpoints only for callbacks it was built with")
        if "weights_only" in inspect.signature(trainer.fit).parameters:
            # a checkpoint read from the store runs no code when loaded (Lightning's default
            # is torch's, False before torch 2.6); pass weights_only=False to trust the store
            kwargs.setdefault("weights_only", True)
        return trainer.fit(model, *args, ckpt_path=self.resume_from(self._folder(trainer)), **kwargs)

    # -- Lightning's callback state: the RNGs ------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # restored when training starts, after the data loaders are set up (a loader built
        # in train_dataloader() draws its seed first, as it did in the saved run)
        self._rng_to_restore = state_dict.get("rng")

    # -- Callback ----------------------------------------------------------------

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self._rng_to_restore is not None:
            set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None
        loader = trainer.train_dataloader
        if self.guard.resume_step and isinstance(loader, DataLoader) and not isinstance(loader, ResumableLoader):
            log.warning("the train loader is a plain DataLoader: Lightning restarts a checkpoint's epoch from "
                        "its first batch, so batches are trained twice. Use "
                        "sessionkit.integrations.lightning.ResumableLoader to go on at the next batch")
        total = trainer.estimated_stepping_batches
        self.guard.begin(int(total) if total != float("inf") else None)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        stop = self.guard.should_stop()
        if stop is None and getattr(trainer, "received_sigterm", False):
            # Lightning's own handler saw a SIGTERM (with only a Job too, where sessionkit
            # installs none): it ends fit after this hook, so this is the last chance to save
            stop = self.guard.stop_because("stopped (SIGTERM)")
        if stop is None and not self.guard.should_save_now():
            return
        folder = self._folder(trainer)
        folder.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(folder / CHECKPOINT_FILE)
        batches = trainer.num_training_batches
        epoch = trainer.current_epoch + ((batch_idx + 1) / batches if batches not in (0, float("inf")) else 0.0)
        self.guard.saved(folder, step=trainer.global_step, epoch=epoch)
        if stop is not None:
            trainer.should_stop = True

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.guard.end(completed=self.guard.reason is None and not trainer.interrupted, step=trainer.global_step)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        # fit raised: an error (the job fails), Ctrl-C, or Lightning's own exit after a SIGTERM
        # (a SystemExit raised once this callback has saved at the end of the step)
        self.guard.end_by(exception)


class ResumableLoader(DataLoader):  # type: ignore[misc]
    """A ``DataLoader`` that resumes mid-epoch at the next batch (see the module docstring).
    Takes ``DataLoader``'s arguments. Each pass over it is an epoch whose shuffling
    generator is seeded from ``seed`` and the epoch's number alone, so the order of epoch
    ``e`` is the same in every process however far earlier passes went. ``seed`` defaults
    to a draw from torch's global generator (so ``seed_everything`` decides it), or the
    given ``generator``'s seed. A ``sampler`` or ``batch_sampler`` of your own must draw
    from the loader's ``generator`` (or from none) for a resumed epoch to have the saved
    order."""

    def __init__(self, dataset: Any, *args: Any, seed: Optional[int] = None,
                 generator: Optional["torch.Generator"] = None, **kwargs: Any) -> None:
        if seed is None:
            seed = (generator.initial_seed() if generator is not None
                    else int(torch.empty((), dtype=torch.int64).random_().item()))
        super().__init__(dataset, *args, generator=generator or torch.Generator(), **kwargs)
        self.seed = int(seed)
        self.epoch = -1  # the pass under way (-1: none yet)
        self._handed_out = 0  # batches of this epoch given to training
        self._skip = 0  # while a pass starts: batches to skip at the sampler (a resume)
        self._resume: Optional[tuple[int, int]] = None  # (epoch, batches done) from a checkpoint

    @property
    def _index_sampler(self) -> Any:
        base = super()._index_sampler
        return _SkipOnce(base, self._skip) if self._skip else base

    def __iter__(self) -> Iterator[Any]:
        epoch, skip = self._resume if self._resume is not None else (self.epoch + 1, 0)
        self._resume = None
        self.epoch, self._handed_out, self._skip = epoch, skip, skip
        self.generator.manual_seed((self.seed + _GOLDEN * epoch) % 2**64)
        iterator = super().__iter__()  # the sampler (and the workers' base seed) draw from it here
        self._skip = 0
        return _Counted(iterator, self)

    def state_dict(self) -> dict[str, Any]:
        """The seed, the epoch under way and the batches of it handed out."""
        return {"seed": self.seed, "epoch": self.epoch, "batches": self._handed_out, "length": len(self)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["length"] != len(self):
            raise ValueError(f"the checkpoint's train loader had {state['length']} batches an epoch and this one "
                             f"has {len(self)}: resume with the same data, batch size and drop_last")
        self.seed = int(state["seed"])
        epoch, done = int(state["epoch"]), int(state["batches"])
        # saved at an epoch's end: the next pass is the next epoch, from its first batch
        self._resume = (epoch + 1, 0) if done >= state["length"] else (epoch, done)


_GOLDEN = 0x9E3779B97F4A7C15  # spreads the epochs' seeds apart


class _SkipOnce:
    """An index sampler whose first pass starts ``skip`` batches in (later passes are whole:
    a persistent-worker iterator keeps this object for every epoch)."""

    def __init__(self, base: Any, skip: int) -> None:
        self.base, self.skip = base, skip

    def __len__(self) -> int:
        return len(self.base)

    def __iter__(self) -> Iterator[Any]:
        # lazily: the batches are skipped at the first next(), so the loader's generator
        # draws in the saved run's order (the workers' base seed, then the permutation)
        skip, self.skip = self.skip, 0
        return itertools.islice(self.base, skip, None)


class _Counted:
    """The loader's iterator, counting the batches it hands out (for ``state_dict``)."""

    def __init__(self, iterator: Any, loader: ResumableLoader) -> None:
        self.iterator, self.loader = iterator, loader

    def __iter__(self) -> "_Counted":
        return self

    def __next__(self) -> Any:
        batch = next(self.iterator)
        self.loader._handed_out += 1
        return batch

    def __len__(self) -> int:
        return len(self.loader)
