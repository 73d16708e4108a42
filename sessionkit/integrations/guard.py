"""What every framework callback shares: when to save and stop, and checkpoints in the store.

A framework owns its training loop, so sessionkit cannot stop it between items as
``Job.track`` does. Instead the callback asks ``should_stop()`` after every step (cheap:
no request on the step path), makes the framework save a checkpoint when it answers, hands
the saved folder to ``saved()`` (uploaded as a folder blob, then committed together with
the global step in one manifest write, so the step count never runs ahead of the weights),
and calls ``end()`` when training returns (the job's status, then the lease released or
handed over), or ``end_by(exc)`` when it raised. Stop reasons, first that holds:

1. SIGTERM (``stopping.requested()``): the primary's lease is kept until the checkpoint
   is saved, then released and the signal passed on;
2. with a ``Primary``: the handover phase with a backup ready (``should_hand_over``);
   with only a ``Session``: its handover phase (a re-run elsewhere resumes);
3. a pause or cancel request (``sessionkit.jobs.request``), read in the background.

At the handover phase with no backup ready yet, one checkpoint is saved at once (what a
runtime cut off now would lose is then only the steps since), and training goes on.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional, Union

from .. import stopping
from ..handover.primary import Primary
from ..jobs import Job
from ..sessions import Session

__all__ = ["TrainingGuard"]

log = logging.getLogger("sessionkit.integrations")
CHECKPOINT_BLOB = "checkpoint"


class TrainingGuard:
    """The job a framework trains in, its stop reasons and its checkpoints. ``run`` is a
    ``Primary`` (handover between runtimes) or a ``Job`` (with an optional ``session`` for
    the countdown's handover phase)."""

    def __init__(self, run: Union[Primary, Job], *, session: Optional[Session] = None,
                 blob: str = CHECKPOINT_BLOB) -> None:
        if isinstance(run, Primary):
            self.primary: Optional[Primary] = run
            self.job = run.job
            self.session = session or run.session
        elif isinstance(run, Job):
            self.primary, self.job, self.session = None, run, session
        else:
            raise TypeError(f"train with a sessionkit Primary or Job, not {type(run).__name__}")
        Job._check_blob_name(blob)
        self.blob = blob
        self.reason: Optional[str] = None
        self.saved_at_phase = False
        self.last_saved_step: Optional[int] = None
        self.training = False  # between begin() and end() / end_by()

    # -- resuming --------------------------------------------------------------

    @property
    def resume_step(self) -> int:
        """The global step of the latest checkpoint in the store (0: none)."""
        return int((self.job.state.get("training") or {}).get("global_step", 0))

    def restore(self, folder: "str | os.PathLike[str]") -> Optional[Path]:
        """Download the latest complete checkpoint into ``folder`` (replaced once whole);
        ``None`` when training has not saved one yet (a first run)."""
        if self.job.status == "completed":
            log.warning("job %r completed already; training it again starts from its last checkpoint",
                        self.job.id)
        return self.job.load_dir(self.blob, folder)

    # -- the loop --------------------------------------------------------------

    def begin(self, total_steps: Optional[int] = None) -> None:
        """Training starts (or resumes): the job runs, counting optimizer steps."""
        if total_steps is not None and total_steps > 0 and self.job.total != total_steps:
            self.job.set_total(int(total_steps))
        self.reason = None
        self.training = True
        self.job.set_status("running", reason="resumed" if self.resume_step else "started")
        if self.primary is not None:
            self.primary.begin_external()

    def should_stop(self) -> Optional[str]:
        """Why training must save and stop now, or None (see the module docstring)."""
        if self.reason is not None:
            return self.reason
        reason = None
        if stopping.requested():
            reason = f"stopped ({stopping.requested()})"
        elif self.primary is not None:
            reason = self.primary.should_hand_over()
        elif self.session is not None and self.session.phase in ("handover", "expired"):
            reason = "handover phase"
        if reason is None:
            reason = self.job.requested_stop()
        return None if reason is None else self.stop_because(reason)

    def stop_because(self, reason: str) -> str:
        """Stop for ``reason`` (one ``should_stop`` found, or one the framework found itself:
        Lightning's own SIGTERM flag, set with or without a Primary); ``should_stop``
        answers it from now on."""
        if self.reason is None:
            log.warning("job %r: %s: saving a checkpoint and stopping training", self.job.id, reason)
            self.reason = reason
        return self.reason

    def should_save_now(self) -> bool:
        """True once, when the handover phase begins with no backup ready: a checkpoint then
        keeps the steps so far should the runtime be cut off."""
        if self.saved_at_phase or self.session is None or self.session.phase not in ("handover", "expired"):
            return False
        self.saved_at_phase = True
        return True

    def saved(self, folder: "str | os.PathLike[str]", *, step: int, epoch: float = 0.0,
              **extra: Any) -> None:
        """The framework finished writing a checkpoint into ``folder``: upload it, then
        commit it with the global ``step`` (and ``epoch``, ``extra``) in one manifest write."""
        self.job.save_dir(self.blob, folder)
        self.job.state["training"] = {"global_step": int(step), "epoch": float(epoch),
                                      "folder": Path(folder).name, **extra}
        self.job.checkpoint(done=int(step))
        self.last_saved_step = int(step)
        log.info("job %r: checkpoint at step %d is in the store", self.job.id, step)

    def save_state(self, step: int, *, epoch: float = 0.0, **objects: Any) -> None:
        """For a hand-written loop: save the ``state_dict`` of each object (``model=``,
        ``optimizer=``, ``scheduler=``, ...) and the RNGs, then commit them with ``step``
        in one manifest write."""
        self.job.save_state(self.blob, extra={"global_step": int(step), "epoch": float(epoch)}, **objects)
        self.job.state["training"] = {"global_step": int(step), "epoch": float(epoch)}
        self.job.checkpoint(done=int(step))
        self.last_saved_step = int(step)

    def load_state(self, **objects: Any) -> int:
        """Load what ``save_state`` saved into the same objects and restore the RNGs; the
        global step to go on from (0 on a first run: nothing is changed)."""
        extra = self.job.load_state(self.blob, **objects)
        return 0 if extra is None else int(extra["global_step"])

    def end(self, *, completed: bool, step: Optional[int] = None) -> None:
        """Training returned: the job's status (completed, with ``step`` steps done; or
        paused with the stop reason unless a request paused or cancelled it), then the
        lease handed over or released."""
        job = self.job
        self.training = False
        if completed and job.status == "running":
            job.set_status("completed")
            job.checkpoint(done=step if step is not None else (self.last_saved_step or 0))
        else:
            job.stop(self.reason or "training stopped")  # paused, unless a request paused or cancelled it
        if self.primary is not None:
            self.primary.end_external()

    def end_by(self, exc: BaseException) -> None:
        """Training raised ``exc`` instead of returning. A stop this guard asked for ends as in
        ``end`` (Lightning leaves ``fit`` by raising ``SystemExit`` after a SIGTERM, once the
        checkpoint is saved); otherwise as a ``Job.track`` loop's would: Ctrl-C pauses, an
        error fails the job. Then the lease is handed over or released as in ``end``, so an
        error does not leave the job "running" under a lease that is still renewed. Nothing
        to do when training had not begun or has ended already."""
        if not self.training:
            return
        if self.reason is not None or isinstance(exc, SystemExit):
            self.end(completed=False)
            return
        self.training = False
        self.job.record_outcome(exc)
        if self.primary is not None:
            self.primary.end_external()
