"""Hugging Face ``transformers``: a ``TrainerCallback`` that makes a ``Trainer`` survive the runtime.

::

    from sessionkit.integrations.transformers import SessionkitCallback

    callback = SessionkitCallback(primary)        # or SessionkitCallback(job, session=...)
    trainer = Trainer(model=model, args=args, train_dataset=train, callbacks=[callback])
    callback.train(trainer)                       # trainer.train(resume_from_checkpoint=...)

``callback.train`` downloads the latest complete checkpoint from the store into
``args.output_dir`` and resumes from it with the Trainer's own resume: model, optimizer,
scheduler, RNG states, global step and epoch, and the data position (the Trainer skips
the batches of the current epoch at the sampler, without loading them). At the handover
phase (a backup ready), on a pause or cancel request, or on SIGTERM, it sets
``should_save`` and ``should_training_stop``; every checkpoint the Trainer saves, the
user's ``save_steps`` ones included, goes to the store and is committed with its step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

from ..handover.primary import Primary
from ..jobs import Job
from ..sessions import Session
from .guard import CHECKPOINT_BLOB, TrainingGuard

try:
    from transformers import TrainerCallback
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("sessionkit.integrations.transformers needs transformers: pip install transformers "
                      "(Colab ships it)") from exc

__all__ = ["SessionkitCallback"]


class SessionkitCallback(TrainerCallback):  # type: ignore[misc]
    """Save and stop when sessionkit says, keep every checkpoint in the store, resume from it."""

    def __init__(self, run: Union[Primary, Job], *, session: Optional[Session] = None,
                 blob: str = CHECKPOINT_BLOB) -> None:
        self.guard = TrainingGuard(run, session=session, blob=blob)

    def resume_from(self, output_dir: "str | os.PathLike[str]") -> Optional[str]:
        """The path to give ``trainer.train(resume_from_checkpoint=...)``: the latest
        checkpoint in the store, downloaded to ``<output_dir>/checkpoint-<step>``; None
        when there is none yet."""
        step = self.guard.resume_step
        if not step:
            return None
        folder = self.guard.restore(Path(output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{step}")
        return None if folder is None else str(folder)

    def train(self, trainer: Any, **kwargs: Any) -> Any:
        """``trainer.train`` from the store's latest checkpoint (or from the start)."""
        if self not in trainer.callback_handler.callbacks:
            trainer.add_callback(self)
        if "resume_from_checkpoint" in kwargs:
            raise TypeError("SessionkitCallback.train chooses resume_from_checkpoint itself (the store's "
                            "latest checkpoint); call trainer.train(...) directly to choose another")
        try:
            return trainer.train(resume_from_checkpoint=self.resume_from(trainer.args.output_dir), **kwargs)
        except BaseException as exc:  # recorded (failed, or paused), then raised as it was
            self.guard.end_by(exc)
            raise

    # -- TrainerCallback ---------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.guard.begin(state.max_steps)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.guard.should_stop():
            control.should_save = True
            control.should_training_stop = True
        elif self.guard.should_save_now():
            control.should_save = True

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        self.guard.saved(folder, step=state.global_step, epoch=state.epoch or 0.0)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.guard.end(completed=self.guard.reason is None and state.global_step >= state.max_steps,
                       step=state.global_step)
