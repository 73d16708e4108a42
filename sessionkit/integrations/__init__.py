"""Training frameworks that survive the runtime: one small module per framework, each
importing its framework only when used.

- ``sessionkit.integrations.transformers.SessionkitCallback`` (a ``TrainerCallback``)
- ``sessionkit.integrations.lightning.SessionkitCallback`` (a Lightning ``Callback``)
- ``sessionkit.integrations.keras.SessionkitCallback`` (a Keras ``Callback``)

Each is built on ``guard.TrainingGuard``: at the handover phase (when a backup is ready),
on a pause or cancel request, or on SIGTERM it makes the framework save a checkpoint and
stop; every checkpoint folder the framework saves goes to the store as a folder blob,
committed with the global step; a backup or a re-run gets the latest complete one back
and resumes from it with the framework's own resume (step, epoch, data position, RNG).
"""

__all__ = ["TrainingGuard"]

from .guard import TrainingGuard
