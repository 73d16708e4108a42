"""Keras 3: a ``Callback`` that makes ``model.fit`` survive the runtime (any backend).

::

    from sessionkit.integrations.keras import ResumableBatches, SessionkitCallback

    model.compile(optimizer="adam", loss="mse")   # built: keras.Input, or called on a batch
    data = ResumableBatches(x_train, y_train, batch_size=32)
    callback = SessionkitCallback(primary)        # or SessionkitCallback(job, session=...)
    callback.fit(model, data, epochs=10)          # model.fit(...), resumed from the store

Keras resumes only at an epoch's start (``initial_epoch``; ``BackupAndRestore`` too),
so a run stopped mid-epoch would train that epoch's first batches twice. Here the data
is a ``ResumableBatches``: its order is a function of the epoch (and a seed), so batch
``j`` of epoch ``e`` is the same in every process. ``callback.fit`` resumes a mid-epoch
checkpoint by first fitting the rest of that epoch (the batches after the saved one,
with ``initial_epoch=e``), then the later epochs: no batch twice, none skipped.

The checkpoint is ``model.save_weights`` (the layers' variables and the optimizer's),
the state of the model's random seed generators (``save_weights`` leaves them out),
with the torch backend the global random generators (unseeded dropout draws from
torch's), and the epoch and batch.
At the handover phase (a backup ready), on a pause or cancel request, or on SIGTERM,
the callback saves at the end of the batch, puts the checkpoint in the store, and sets
``model.stop_training``.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Optional, Union

from ..handover.primary import Primary
from ..jobs import Job
from ..jobs.training_state import rng_state, set_rng_state
from ..sessions import Session
from .guard import CHECKPOINT_BLOB, TrainingGuard

try:
    import keras
    import numpy as np
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("sessionkit.integrations.keras needs Keras 3: pip install keras (and a backend: "
                      "tensorflow, jax or torch)") from exc

__all__ = ["ResumableBatches", "SessionkitCallback"]

log = logging.getLogger("sessionkit.integrations")
WEIGHTS_FILE = "model.weights.h5"
SEEDS_FILE = "seed-generators.npz"  # not in save_weights: the state seeded random layers draw from
RNG_FILE = "rng.pt"  # torch backend: unseeded dropout draws from torch's global generator


def _torch_backend() -> bool:
    return keras.backend.backend() == "torch"


def _seed_states(model: Any) -> list[Any]:
    """The model's variables that are not weights: its random seed generators' states."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


class ResumableBatches(keras.utils.PyDataset):  # type: ignore[misc]
    """Batches of ``x`` (and ``y``): numpy arrays, or anything an index array indexes, in
    an order that depends only on the epoch and ``seed``
    (shuffled each epoch unless ``shuffle=False``), so a resumed epoch can go on at any
    batch. ``seed`` defaults to a draw from numpy's global generator, so
    ``keras.utils.set_random_seed`` decides it. Other keyword arguments go to
    ``PyDataset`` (``workers``, ``use_multiprocessing``)."""

    def __init__(self, x: Any, y: Any = None, *, batch_size: int = 32, shuffle: bool = True,
                 seed: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if y is not None and len(y) != len(x):
            raise ValueError(f"x has {len(x)} samples and y {len(y)}: give one y per x")
        if len(x) == 0:
            raise ValueError("x has no samples")
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.seed = int(np.random.randint(0, 2**31 - 1)) if seed is None else int(seed)
        self.batches_per_epoch = math.ceil(len(x) / batch_size)
        self.epoch, self.start = 0, 0  # the epoch batches come from; its batches skipped (a resume)
        self._order: Optional[Any] = None

    def set_position(self, epoch: int, start: int = 0) -> None:
        """Serve epoch ``epoch``'s batches from batch ``start`` on (``len`` counts them)."""
        if not 0 <= start < self.batches_per_epoch:
            raise ValueError(f"start must be in 0..{self.batches_per_epoch - 1}, got {start}")
        self.epoch, self.start, self._order = int(epoch), int(start), None

    def follow_epochs(self) -> "keras.callbacks.Callback":
        """A callback that tells these batches which epoch Keras trains (Keras does not tell
        a PyDataset; its own ``on_epoch_begin`` also runs for a look at the first batch).
        ``SessionkitCallback`` does this itself; pass this one to ``model.fit`` without it."""
        return _FollowEpochs(self)

    def _epoch_begins(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.set_position(epoch)  # a new epoch from its first batch (a resumed one keeps its start)

    def order(self) -> Any:
        """The sample indices of the current epoch, in training order."""
        if self._order is None:
            n = len(self.x)
            self._order = (np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle
                           else np.arange(n))
        return self._order

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start

    def __getitem__(self, i: int) -> Any:
        j = self.start + int(i)
        idx = self.order()[j * self.batch_size:(j + 1) * self.batch_size]
        return self.x[idx] if self.y is None else (self.x[idx], self.y[idx])


class SessionkitCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Save and stop when sessionkit says, keep the checkpoint in the store, resume from
    it at the next batch. Train with ``callback.fit``; ``folder`` is where checkpoints
    are written before they go to the store (default: a temporary folder)."""

    def __init__(self, run: Union[Primary, Job], *, session: Optional[Session] = None,
                 blob: str = CHECKPOINT_BLOB, folder: "str | os.PathLike[str] | None" = None) -> None:
        super().__init__()
        self.guard = TrainingGuard(run, session=session, blob=blob)
        self._folder = Path(folder) if folder is not None else None
        self._data: Optional[ResumableBatches] = None
        self._epoch = 0
        self._step = 0
        self._rng_to_restore: Optional[dict[str, Any]] = None
        self._save_at_epoch_end = False

    @property
    def folder(self) -> Path:
        """Where checkpoints are written and restored (a temporary folder, made on first use,
        unless one was given)."""
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="sessionkit-keras-"))
        return self._folder

    def fit(self, model: Any, data: ResumableBatches, *, epochs: int, **kwargs: Any) -> Any:
        """``model.fit(data, epochs=...)`` from the store's latest checkpoint (or from the
        start); other keyword arguments go to ``model.fit``. Returns the last History."""
        if not isinstance(data, ResumableBatches):
            raise TypeError(f"give the data as a sessionkit ResumableBatches, not {type(data).__name__}: Keras "
                            f"cannot start an epoch at a batch, and a ResumableBatches can")
        for name in ("initial_epoch", "shuffle", "steps_per_epoch", "y", "batch_size"):
            if name in kwargs:
                raise TypeError(f"SessionkitCallback.fit sets {name} itself (the data is a ResumableBatches; "
                                f"the epoch and batch come from the store's latest checkpoint)")
        if not model.built:
            raise ValueError("build the model before fit (keras.Input, or call it on a batch): its weights are "
                             "loaded from the store's checkpoint before training starts")
        callbacks = [*kwargs.pop("callbacks", []), self]
        epoch, start = self._resume(model, data)
        self._data = data
        self.guard.begin(epochs * data.batches_per_epoch)
        history = None
        try:
            if start:  # mid-epoch: the rest of that epoch first
                data.set_position(epoch, start)
                history = model.fit(data, epochs=epoch + 1, initial_epoch=epoch, shuffle=False, callbacks=callbacks,
                                    **kwargs)
                epoch += 1
            if self.guard.reason is None and epoch < epochs:
                data.set_position(epoch, 0)
                history = model.fit(data, epochs=epochs, initial_epoch=epoch, shuffle=False, callbacks=callbacks,
                                    **kwargs)
        except BaseException as exc:  # recorded (failed, or paused), then raised as it was
            self.guard.end_by(exc)
            raise
        finally:
            self._data = None
        self.guard.end(completed=self.guard.reason is None, step=self._step)  # EarlyStopping too completes
        return history

    def _resume(self, model: Any, data: ResumableBatches) -> tuple[int, int]:
        """Load the latest checkpoint into ``model``: the epoch and batch to go on from."""
        training = self.guard.job.state.get("training") or {}
        if not self.guard.resume_step:
            return 0, 0
        folder = self.guard.restore(self.folder)
        if folder is None:
            return 0, 0
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # its variables are in the checkpoint
        model.load_weights(folder / WEIGHTS_FILE)
        with np.load(folder / SEEDS_FILE, allow_pickle=False) as seeds:
            states = _seed_states(model)
            if len(seeds.files) != len(states):
                raise ValueError(f"the checkpoint has {len(seeds.files)} random seed generators and the model "
                                 f"{len(states)}: resume with the same model")
            for i, variable in enumerate(states):
                variable.assign(seeds[f"s{i}"])
        if _torch_backend():
            import torch

            self._rng_to_restore = torch.load(folder / RNG_FILE, weights_only=True)
        if "epoch_index" not in training or "batch" not in training:
            raise ValueError(f"job {self.guard.job.id!r}: its latest checkpoint was not saved by the Keras callback "
                             f"(it has {', '.join(sorted(training)) or 'no training state'}); give this training "
                             f"its own job or blob name")
        self._step = int(training["global_step"])
        epoch, batch = int(training["epoch_index"]), int(training["batch"])
        if training.get("batches_per_epoch") != data.batches_per_epoch:
            raise ValueError(f"the checkpoint's data had {training.get('batches_per_epoch')} batches an epoch and "
                             f"this has {data.batches_per_epoch}: resume with the same data and batch size")
        return (epoch + 1, 0) if batch >= data.batches_per_epoch else (epoch, batch)

    # -- Callback ----------------------------------------------------------------

    def on_train_begin(self, logs: Any = None) -> None:
        if self._data is None:
            raise RuntimeError("train with callback.fit(model, data, epochs=...), not model.fit: the callback "
                               "resumes from the store and starts the data at the saved batch")

    # The random generators are restored where the saved run stood when it saved. Making
    # an epoch's data iterator draws from torch's generator: a run saved mid-epoch had made
    # it already (restore just before the first step, once the batch is fetched); one saved
    # at an epoch's end had not made the next epoch's (restore as that epoch begins).

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._epoch = epoch
        if self._data is not None:
            self._data._epoch_begins(epoch)
            if self._data.start == 0:
                self._restore_rng()

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        self._restore_rng()

    def _restore_rng(self) -> None:
        if self._rng_to_restore is not None:
            set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        data = self._data
        assert data is not None
        in_epoch = data.start + batch + 1  # batches of this epoch trained on
        self._step = self._epoch * data.batches_per_epoch + in_epoch
        stop = self.guard.should_stop()
        if stop is None and not self.guard.should_save_now():
            return
        if in_epoch >= data.batches_per_epoch:  # the epoch's last batch: save as the epoch ends
            self._save_at_epoch_end = True
            return
        self._save(in_epoch, stop)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        # After the last batch Keras makes the next epoch's data iterator (drawing from
        # torch's generator) before this; the resumed run makes it after on_epoch_begin.
        if self._save_at_epoch_end and self._data is not None:
            self._save_at_epoch_end = False
            self._save(self._data.batches_per_epoch, self.guard.reason)

    def _save(self, in_epoch: int, stop: Optional[str]) -> None:
        data = self._data
        assert data is not None
        self.folder.mkdir(parents=True, exist_ok=True)
        self.model.save_weights(self.folder / WEIGHTS_FILE, overwrite=True)
        np.savez(self.folder / SEEDS_FILE, **{f"s{i}": np.asarray(keras.ops.convert_to_numpy(v))
                                            for i, v in enumerate(_seed_states(self.model))})
        if _torch_backend():
            import torch

            torch.save(rng_state(), self.folder / RNG_FILE)
        self.guard.saved(self.folder, step=self._step, epoch=self._epoch + in_epoch / data.batches_per_epoch,
                         epoch_index=self._epoch, batch=in_epoch, batches_per_epoch=data.batches_per_epoch)
        if stop is not None:
            self.model.stop_training = True


class _FollowEpochs(keras.callbacks.Callback):  # type: ignore[misc]
    """Tells a ``ResumableBatches`` which epoch begins (see ``follow_epochs``)."""

    def __init__(self, data: ResumableBatches) -> None:
        super().__init__()
        self.data = data

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.data._epoch_begins(epoch)
