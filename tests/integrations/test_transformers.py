"""Transformers: the Trainer's state.log_history is what the V2 API shows, step by step. The
model is built from a small config with random weights: nothing is downloaded (HF_HUB_OFFLINE)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from shown import shown

from runicorn_lite.integrations.transformers import RunicornCallback, rewrite_logs

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


class Pairs(torch.utils.data.Dataset):  # type: ignore[misc]
    """Token sequences whose label says whether token 1 occurs in them."""

    def __init__(self, n: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(2, 30, (n, 8), generator=gen)
        self.ids[::2, 3] = 1
        self.labels = (self.ids == 1).any(dim=1).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(8, dtype=torch.long), "labels": self.labels[i]}


class Explode(transformers.TrainerCallback):  # type: ignore[misc]
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == 3:
            raise RuntimeError("nan loss")


def _trainer(tmp_path: Path, callbacks: list[Any], **kwargs: Any) -> Any:
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=16, num_labels=2)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=6, per_device_train_batch_size=4, per_device_eval_batch_size=8,
        learning_rate=1e-3, logging_steps=2, eval_strategy="steps", eval_steps=3, save_strategy="no",
        report_to="none", use_cpu=True, disable_tqdm=True, dataloader_num_workers=0, seed=0, **kwargs)
    return transformers.Trainer(model=transformers.BertForSequenceClassification(config), args=args,
                                train_dataset=Pairs(32, 0), eval_dataset=Pairs(8, 1), callbacks=callbacks)


def test_log_history_is_what_we_show(root: Path, tmp_path: Path) -> None:
    callback = RunicornCallback(project="hf", name="bert-tiny", root=root)
    trainer = _trainer(tmp_path, [callback])
    trainer.train()
    run = shown(root, _only_run(root))
    assert run.status == "finished"
    history = trainer.state.log_history
    expected: dict[str, dict[int, float]] = {}
    for entry in history:
        if "train_runtime" in entry:
            continue
        for key, value in rewrite_logs({k: v for k, v in entry.items() if k not in ("step", "epoch")}).items():
            expected.setdefault(key, {})[entry["step"]] = float(value)
    assert {"train/loss", "train/learning_rate", "eval/loss"} <= set(expected)
    assert sorted(expected["train/loss"]) == [2, 4, 6] and sorted(expected["eval/loss"]) == [3, 6]
    for metric, curve in expected.items():
        assert run.curve(metric) == pytest.approx(curve, rel=1e-6), metric
    assert run.params["learning_rate"] == 0.001 and run.params["max_steps"] == 6
    assert run.params["model.hidden_size"] == 16 and run.params["model.num_hidden_layers"] == 1
    # the closing figures: in the summary, not curves of one point
    summary = json.loads((Path(run.experiment["run_dir"]) / "summary.json").read_text())
    assert summary["train_loss"] == pytest.approx(history[-1]["train_loss"]) and "train/train_loss" not in run.series


def _only_run(root: Path) -> str:
    (run_dir,) = (root / "runs").rglob("meta.json")
    return run_dir.parent.name


def test_training_that_raises_is_failed(root: Path, tmp_path: Path) -> None:
    callback = RunicornCallback(project="hf", name="boom", root=root)
    with pytest.raises(RuntimeError, match="nan loss") as caught:
        _trainer(tmp_path, [callback, Explode()]).train()
    run_id = _only_run(root)
    assert shown(root, run_id).status == "running"  # the Trainer tells its callbacks nothing of it
    sys.excepthook(caught.type, caught.value, caught.tb)  # as Python does when the script ends on it
    run = shown(root, run_id)
    assert run.status == "failed" and sorted(run.curve("train/loss")) == [2]
