"""PyTorch Lightning: the values Lightning hands its loggers (as its own CSVLogger records them)
are what the V2 API shows, step by step; the hyperparameters are params; a checkpoint resumes
the same run."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from shown import shown, shown_all

import runicorn_lite
from runicorn_lite.integrations.lightning import SIDECAR, RunicornLogger

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch")

pytestmark = [
    # Lightning's advice for real trainings (workers, log intervals, small batch counts)
    pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning"),
    # Lightning 2.6 with torch 2.13: Lightning's own use of torch's pytree
    pytest.mark.filterwarnings("ignore:`isinstance.treespec, LeafSpec.` is deprecated:FutureWarning"),
]


class Tiny(L.LightningModule):
    def __init__(self, lr: float = 0.1, hidden: int = 4, fail_at: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        if self.hparams.fail_at is not None and self.global_step == self.hparams.fail_at:
            raise RuntimeError("loss exploded")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def on_train_end(self) -> None:
        for logger in self.loggers:
            if isinstance(logger, RunicornLogger):
                logger.log_image("weights", [torch.rand(3, 8, 8), torch.zeros(8, 8, dtype=torch.uint8)],
                                 step=self.global_step, caption=["rgb", "grey"])

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def _loaders() -> tuple[Any, Any]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 3, generator=gen)
    data = torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))
    return (torch.utils.data.DataLoader(data, batch_size=8), torch.utils.data.DataLoader(data, batch_size=16))


def _trainer(tmp_path: Path, logger: Any, max_epochs: int, **kwargs: Any) -> Any:
    return L.Trainer(accelerator="cpu", devices=1, max_epochs=max_epochs, logger=logger, log_every_n_steps=1,
                     enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path, **kwargs)


def _csv_curves(csv_logger: Any) -> dict[str, dict[int, float]]:
    """What Lightning gave its loggers, as its CSVLogger wrote it: metric → step → value."""
    curves: dict[str, dict[int, float]] = {}
    with open(Path(csv_logger.log_dir) / "metrics.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            for key, value in row.items():
                if key not in ("step", "epoch") and value != "":
                    curves.setdefault(key, {})[int(row["step"])] = float(value)
    return curves


def test_logged_values_params_and_images(root: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    ours = RunicornLogger(project="lit", name="tiny", root=root, tags=["cpu"])
    theirs = L.loggers.CSVLogger(tmp_path / "csv")
    train, val = _loaders()
    module = Tiny(lr=0.05, hidden=4)
    _trainer(tmp_path, [ours, theirs], 3, enable_checkpointing=False).fit(module, train, val)

    (run,) = shown_all(root).values()
    assert run.experiment["id"] == ours.version and run.status == "finished"
    expected = _csv_curves(theirs)
    assert set(expected) == {"train_loss", "val_loss"}
    assert sorted(expected["train_loss"]) == list(range(12))  # 4 batches × 3 epochs, Lightning's steps 0…11
    for metric, curve in expected.items():
        assert run.curve(metric) == pytest.approx(curve, rel=1e-6), metric
    assert run.params == {"lr": 0.05, "hidden": 4, "fail_at": None} and run.experiment["tags"] == ["cpu"]
    assert run.detail["images_count"] == 2
    assert ours.log_dir == str(Path(run.experiment["run_dir"]))


def test_training_that_raises_is_failed(root: Path, tmp_path: Path) -> None:
    logger = RunicornLogger(project="lit", name="boom", root=root)
    train, _ = _loaders()
    with pytest.raises(RuntimeError, match="loss exploded"):
        _trainer(tmp_path, logger, 3, enable_checkpointing=False).fit(Tiny(fail_at=5), train)
    run = shown(root, logger.version)
    assert run.status == "failed" and sorted(run.curve("train_loss")) == [0, 1, 2, 3, 4]


# The resumed training saves its checkpoints in a folder named by the new logger's version at
# setup (the run is known only once the checkpoint is restored): Lightning says so.
@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
def test_fit_from_a_checkpoint_resumes_the_same_run(root: Path, tmp_path: Path) -> None:
    train, val = _loaders()
    first = RunicornLogger(project="lit", name="long", root=root)
    _trainer(tmp_path, first, 2, callbacks=[L.callbacks.ModelCheckpoint(save_last=True)]).fit(Tiny(lr=0.05), train, val)
    # Lightning's default place: <default_root_dir>/<logger.name>/<logger.version>/checkpoints
    folder = tmp_path / "long" / first.version / "checkpoints"
    assert json.loads((folder / SIDECAR).read_text())["files"]["last.ckpt"]["run_id"] == first.version

    # a new logger of the same project and name, a new trainer, fit from the checkpoint
    again = RunicornLogger(project="lit", name="long", root=root)
    _trainer(tmp_path, again, 4, callbacks=[L.callbacks.ModelCheckpoint(save_last=True)]).fit(
        Tiny(lr=0.05), train, val, ckpt_path=str(folder / "last.ckpt"))
    assert again.version == first.version
    runs = shown_all(root)
    assert list(runs) == [first.version]  # one run: none left empty by the logger touched before the restore
    run = runs[first.version]
    assert run.status == "finished"
    assert sorted(run.curve("train_loss")) == list(range(16))  # the steps continue: 4 epochs × 4 batches
    assert sorted(run.curve("val_loss")) == [3, 7, 11, 15]
    assert run.params["lr"] == 0.05
    other = RunicornLogger(project="lit", name="other", root=root)  # another name: a run of its own
    _trainer(tmp_path, other, 3, callbacks=[L.callbacks.ModelCheckpoint(save_last=True)]).fit(
        Tiny(), train, val, ckpt_path=str(folder / "last.ckpt"))
    assert other.version != first.version and sorted(shown(root, other.version).curve("val_loss")) == [11]


def test_a_logger_that_logs_nothing_leaves_no_run(root: Path) -> None:
    logger = RunicornLogger(project="lit", name="idle", root=root)
    _ = logger.experiment, logger.version, logger.name, logger.save_dir, logger.log_dir
    logger.finalize("success")
    assert not (root / "runs").exists()
    given = runicorn_lite.init(project="lit", name="given", root=root)
    explicit = RunicornLogger(run=given)
    explicit.log_hyperparams({"a": 1})
    explicit.log_metrics({"m": 1.0}, step=1)
    explicit.finalize("success")
    assert not given.is_finished  # a given run is its owner's to finish
    given.finish()
    assert shown(root, given.id).params == {"a": 1}
    resumed = RunicornLogger(resume=given.id, root=root)
    resumed.log_metrics({"m": 2.0}, step=2)
    resumed.finalize("success")
    assert shown(root, given.id).curve("m") == {1: 1.0, 2: 2.0}
    with pytest.raises(TypeError, match="either run= or resume="):
        RunicornLogger(run=given, resume=given.id)
    with pytest.raises(TypeError, match="images must be a list"):
        resumed.log_image("k", torch.zeros(4, 4))
    with pytest.raises(ValueError, match="no such run"):
        RunicornLogger(resume="20990101_000000_abcdef", root=root).log_metrics({"m": 1.0}, step=1)


@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
def test_a_checkpoint_whose_run_is_gone_starts_a_new_run(root: Path, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    train, _ = _loaders()
    first = RunicornLogger(project="lit", name="gone", root=root)
    _trainer(tmp_path, first, 1, callbacks=[L.callbacks.ModelCheckpoint(save_last=True)]).fit(Tiny(), train)
    shutil.rmtree(Path(first.log_dir or ""))
    again = RunicornLogger(project="lit", name="gone", root=root)
    with caplog.at_level(logging.WARNING, logger="runicorn_lite"):
        _trainer(tmp_path, again, 2, callbacks=[L.callbacks.ModelCheckpoint(save_last=True)]).fit(
            Tiny(), train, ckpt_path=str(tmp_path / "gone" / first.version / "checkpoints" / "last.ckpt"))
    assert again.version != first.version and "is gone" in caplog.text
    assert sorted(shown(root, again.version).curve("train_loss")) == [4, 5, 6, 7]
