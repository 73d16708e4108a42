"""The Lightning and Keras integrations in one process: what their data wrappers serve after
a resume, and the clear errors for the ways they are misused."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # the one backend tests/training/requirements.txt installs
torch = pytest.importorskip("torch")


# -- Lightning's ResumableLoader ----------------------------------------------------


def lightning_loader(**kwargs):
    pytest.importorskip("lightning")
    from sessionkit.integrations.lightning import ResumableLoader

    return ResumableLoader(list(range(20)), batch_size=3, shuffle=True, **kwargs)


def epochs(loader, n: int) -> list[list[int]]:
    return [[int(i) for batch in loader for i in batch] for _ in range(n)]


def test_a_resumed_loader_serves_the_rest_of_the_saved_epoch_then_the_next_ones():
    torch.manual_seed(3)
    whole = epochs(lightning_loader(), 3)
    torch.manual_seed(3)
    loader = lightning_loader()
    first = [int(i) for i in next(iter(loader))]  # the first epoch's first batch
    it = iter(loader)
    taken = [next(it) for _ in range(4)]  # the second epoch, 4 of its 7 batches
    state = loader.state_dict()
    assert state["batches"] == 4 and first == whole[0][:3]

    torch.manual_seed(99)  # another process: another global seed
    resumed = lightning_loader()
    resumed.load_state_dict(state)
    rest = [int(i) for batch in resumed for i in batch]
    assert [int(i) for b in taken for i in b] + rest == whole[1], "the epoch goes on at batch 5, in the saved order"
    assert len(resumed) == 7, "len stays the epoch's, as Lightning counts"
    assert epochs(resumed, 1) == [whole[2]], "the next epoch is the uninterrupted run's"


def test_a_loader_saved_at_an_epochs_end_resumes_with_the_next_epoch():
    torch.manual_seed(3)
    whole = epochs(lightning_loader(), 2)
    torch.manual_seed(3)
    loader = lightning_loader()
    assert epochs(loader, 1) == [whole[0]]
    resumed = lightning_loader()
    resumed.load_state_dict(loader.state_dict())
    assert epochs(resumed, 1) == [whole[1]]


def test_a_loader_refuses_a_state_of_other_data():
    state = lightning_loader().state_dict()
    from sessionkit.integrations.lightning import ResumableLoader

    other = ResumableLoader(list(range(30)), batch_size=3)
    with pytest.raises(ValueError, match="had 7 batches an epoch and this one has 10"):
        other.load_state_dict(state)


def test_lightning_fit_needs_the_callback_in_the_trainer(tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    from sessionkit import Job
    from sessionkit.integrations.lightning import SessionkitCallback

    callback = SessionkitCallback(Job(str(tmp_path / "store"), "train"))
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         default_root_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"Trainer\(\.\.\., callbacks=\[callback\]\)"):
        callback.fit(trainer, None)
    with pytest.raises(TypeError, match="chooses ckpt_path itself"):
        callback.fit(trainer, None, ckpt_path="last")


# -- Keras's ResumableBatches -------------------------------------------------------


def keras_batches(**kwargs):
    pytest.importorskip("keras")
    import numpy as np

    from sessionkit.integrations.keras import ResumableBatches

    return ResumableBatches(np.arange(10), np.arange(10) * 2, batch_size=4, **kwargs)


def test_batches_depend_on_the_epoch_and_seed_only():
    a, b = keras_batches(seed=5), keras_batches(seed=5)
    b.set_position(1)
    b.set_position(0)
    assert [list(a[i][0]) for i in range(len(a))] == [list(b[i][0]) for i in range(len(b))]
    assert sorted(int(v) for i in range(len(a)) for v in a[i][0]) == list(range(10))
    assert list(a[0][1]) == [2 * v for v in a[0][0]], "y follows x"
    b.set_position(1)
    assert [list(a[i][0]) for i in range(3)] != [list(b[i][0]) for i in range(3)], "each epoch reshuffles"
    c = keras_batches(seed=5)
    c.set_position(1, 2)
    assert len(c) == 1 and list(c[0][0]) == list(b[2][0]), "a resumed epoch starts at the saved batch"


def test_batches_refuse_bad_input():
    import numpy as np

    with pytest.raises(ValueError, match="x has 10 samples and y 3"):
        keras_batches().__class__(np.arange(10), np.arange(3))
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        keras_batches(shuffle=False).__class__(np.arange(10), batch_size=0)
    with pytest.raises(ValueError, match=r"start must be in 0\.\.2"):
        keras_batches().set_position(0, 3)


def test_keras_fit_refuses_plain_data_and_model_fit_with_the_callback(tmp_path):
    keras = pytest.importorskip("keras")
    import numpy as np

    from sessionkit import Job
    from sessionkit.integrations.keras import SessionkitCallback

    callback = SessionkitCallback(Job(str(tmp_path / "store"), "train"), folder=tmp_path / "ckpt")
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((4, 1), "float32")
    with pytest.raises(TypeError, match="ResumableBatches, not ndarray"):
        callback.fit(model, x, epochs=1)
    with pytest.raises(TypeError, match="sets initial_epoch itself"):
        callback.fit(model, keras_batches(), epochs=1, initial_epoch=1)
    with pytest.raises(RuntimeError, match=r"callback\.fit\(model, data, epochs=\.\.\.\), not model\.fit"):
        model.fit(x, x, epochs=1, verbose=0, callbacks=[callback])


# -- an error in training -----------------------------------------------------------


class Boom(RuntimeError):
    pass


def fit_lightning_that_fails(job, tmp_path):
    pl = pytest.importorskip("lightning.pytorch")
    from sessionkit.integrations.lightning import ResumableLoader, SessionkitCallback

    class Failing(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(1, 1)

        def training_step(self, batch, batch_idx):
            if batch_idx == 2:
                raise Boom("step 3 went wrong")
            return self.lin(batch.float()[:, None]).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    callback = SessionkitCallback(job)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=str(tmp_path), callbacks=[callback])
    callback.fit(trainer, Failing(), train_dataloaders=ResumableLoader(list(range(12)), batch_size=2))


def fit_keras_that_fails(job, tmp_path):
    keras = pytest.importorskip("keras")
    import numpy as np

    from sessionkit.integrations.keras import ResumableBatches, SessionkitCallback

    class Failing(keras.Model):
        def __init__(self):
            super().__init__()
            self.lin = keras.layers.Dense(1)
            self.steps = 0

        def call(self, x):
            return self.lin(x)

        def train_step(self, data):
            self.steps += 1
            if self.steps == 3:
                raise Boom("step 3 went wrong")
            return super().train_step(data)

    model = Failing()
    model(np.zeros((1, 1), "float32"))
    model.compile(optimizer="sgd", loss="mse")
    data = ResumableBatches(np.zeros((12, 1), "float32"), np.zeros(12, "float32"), batch_size=2)
    SessionkitCallback(job, folder=tmp_path / "ckpt").fit(model, data, epochs=1, verbose=0)


def fit_transformers_that_fails(job, tmp_path):
    pytest.importorskip("transformers")
    from transformers import Trainer, TrainingArguments

    from sessionkit.integrations.transformers import SessionkitCallback

    class Failing(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(1, 1)
            self.steps = 0

        def forward(self, x, labels):
            self.steps += 1
            if self.steps == 3:
                raise Boom("step 3 went wrong")
            return {"loss": ((self.lin(x).squeeze(-1) - labels) ** 2).mean()}

    rows = [{"x": torch.zeros(1), "labels": torch.tensor(0.0)} for _ in range(12)]
    args = TrainingArguments(output_dir=str(tmp_path / "hf"), per_device_train_batch_size=2, num_train_epochs=1,
                             save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True,
                             logging_strategy="no", remove_unused_columns=False)
    SessionkitCallback(job).train(Trainer(model=Failing(), args=args, train_dataset=rows))


@pytest.mark.parametrize("fit", [fit_lightning_that_fails, fit_keras_that_fails, fit_transformers_that_fails],
                         ids=["lightning", "keras", "transformers"])
def test_an_error_in_training_fails_the_job_and_is_raised(fit, tmp_path):
    """Not left "running" (as a job whose loop died would look to every view and backup):
    failed, with the error, as a ``Job.track`` loop's error is recorded."""
    from sessionkit import Job

    url = str(tmp_path / "store")
    with pytest.raises(Boom, match="step 3 went wrong"):
        fit(Job(url, "train"), tmp_path)
    job = Job(url, "train")  # as another process reads it from the store
    assert job.status == "failed"
    assert job.progress.error is not None and "step 3 went wrong" in str(job.progress.error)


class RunsCode:
    """Unpickling this calls ``Path.touch``: what a checkpoint written by someone else could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        from pathlib import Path

        return (Path.touch, (Path(self.marker),))


def test_a_lightning_checkpoint_from_the_store_runs_no_code_when_loaded(tmp_path, monkeypatch):
    """Also where torch's own default would unpickle anything (before torch 2.6, as this
    environment variable makes it): the callback asks Lightning for ``weights_only=True``."""
    pl = pytest.importorskip("lightning.pytorch")
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    from sessionkit import Job
    from sessionkit.integrations.guard import TrainingGuard
    from sessionkit.integrations.lightning import CHECKPOINT_FILE, ResumableLoader, SessionkitCallback

    url, marker, planted = str(tmp_path / "store"), tmp_path / "code-ran", tmp_path / "planted"
    planted.mkdir()
    # what another writer to the store could commit as the latest checkpoint
    torch.save({"state_dict": {}, "loops": {}, "epoch": 0, "global_step": 3, "payload": RunsCode(marker)},
               planted / CHECKPOINT_FILE)
    writer = Job(url, "train")
    TrainingGuard(writer).saved(planted, step=3)
    writer.wait_saved()  # saves upload in the background; the planted checkpoint is committed now

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(1, 1)

        def training_step(self, batch, batch_idx):
            return self.lin(batch.float()[:, None]).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    callback = SessionkitCallback(Job(url, "train"))
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=str(tmp_path / "run"), callbacks=[callback])
    import pickle

    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        callback.fit(trainer, Tiny(), train_dataloaders=ResumableLoader(list(range(4)), batch_size=2))
    assert not marker.exists(), "loading the store's checkpoint ran code from it"
