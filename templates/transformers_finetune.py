"""A Hugging Face Trainer fine-tune that survives the runtime: copy it and put in your data.

Run it; stop it (SIGTERM, the runtime's end, a pause request, or a planned handover to
a backup runtime); run it again here or on another runtime that opens the same store:
the Trainer resumes from the latest checkpoint in the store at the next batch, with the
optimizer, scheduler, RNGs, step and epoch it had.

    python transformers_finetune.py --store gdrive://id/<folderId> --model distilbert-base-uncased
    python transformers_finetune.py --store sessionkit-state --tiny     # no download: a tiny BERT

``--tiny`` builds a two-layer BERT from a config and encodes text byte by byte, so the
example runs where the Hugging Face hub cannot be reached (the tests run it that way).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from sessionkit.handover import Primary
from sessionkit.integrations.transformers import SessionkitCallback

SEED, EPOCHS, BATCH, SAVE_EVERY, MAX_LENGTH = 0, 3, 8, 10, 32

# Your data: (text, label) pairs. Here a toy sentiment set.
GOOD = ["a fine film", "great acting", "I loved it", "wonderful story", "a joy to watch", "superb"]
BAD = ["a dull film", "poor acting", "I hated it", "a weak story", "a chore to watch", "dreadful"]
EXAMPLES = [(f"{t} ({i})", 1) for i in range(8) for t in GOOD] + [(f"{t} ({i})", 0) for i in range(8) for t in BAD]


class Examples(torch.utils.data.Dataset):
    def __init__(self, encode) -> None:
        self.items = [dict(encode(text), labels=torch.tensor(label)) for text, label in EXAMPLES]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def tiny_model_and_encoder():
    """A two-layer BERT from a config, and a byte encoder: nothing to download."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=260, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=MAX_LENGTH, num_labels=2)

    def encode(text: str) -> dict:
        ids = [256] + [b for b in text.encode()[:MAX_LENGTH - 2]] + [257]
        pad = MAX_LENGTH - len(ids)
        return {"input_ids": torch.tensor(ids + [0] * pad), "attention_mask": torch.tensor([1] * len(ids) + [0] * pad)}

    return BertForSequenceClassification(config), encode


def hub_model_and_encoder(name: str):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name)

    def encode(text: str) -> dict:
        out = tokenizer(text, padding="max_length", truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        return {k: v[0] for k, v in out.items()}

    return AutoModelForSequenceClassification.from_pretrained(name, num_labels=2), encode


class Progress(TrainerCallback):
    """Prints each step (and slows it down for demos)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_step_end(self, args, state, control, **kwargs) -> None:
        print(f"step {state.global_step}", flush=True)
        if self.seconds:
            time.sleep(self.seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="sessionkit-state", help="store folder or URL")
    parser.add_argument("--job", default="my-finetune", help="the job's name in the store")
    parser.add_argument("--model", default="distilbert-base-uncased", help="a model on the Hugging Face hub")
    parser.add_argument("--tiny", action="store_true", help="a tiny BERT from a config instead (no download)")
    parser.add_argument("--output-dir", default="finetune-out", help="the Trainer's local checkpoint folder")
    parser.add_argument("--out", default="", help="save the final weights here (a .pt file)")
    parser.add_argument("--step-seconds", type=float, default=0.0, help="slow each step down (for demos)")
    args = parser.parse_args(argv)

    torch.manual_seed(SEED)
    model, encode = tiny_model_and_encoder() if args.tiny else hub_model_and_encoder(args.model)
    training = TrainingArguments(output_dir=args.output_dir, num_train_epochs=EPOCHS, per_device_train_batch_size=BATCH,
                                 learning_rate=1e-3 if args.tiny else 5e-5, seed=SEED, save_strategy="steps",
                                 save_steps=SAVE_EVERY, save_total_limit=2, logging_strategy="no", report_to="none",
                                 disable_tqdm=True)
    trainer = Trainer(model=model, args=training, train_dataset=Examples(encode),
                      callbacks=[Progress(args.step_seconds)])

    primary = Primary(args.store, args.job, runtime="local", label="finetune")  # waits if another holds it
    callback = SessionkitCallback(primary)
    print(f"resuming from step {callback.guard.resume_step}" if callback.guard.resume_step else "starting",
          flush=True)
    callback.train(trainer)  # trainer.train(resume_from_checkpoint=<the store's latest checkpoint>)
    if args.out:
        torch.save(model.state_dict(), args.out)
    print(json.dumps({"step": trainer.state.global_step, "stopped": callback.guard.reason,
                      "status": primary.job.status}), flush=True)
    primary.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
