"""Two CPU processes training with DDP on gloo, logged by one RunicornLogger (run by
test_lightning_ddp.py as ``python ddp_train.py ROOT``). ``ddp_fork``: both ranks are forks of
this process, so torch and Lightning are imported once, not once per rank."""

import sys
import warnings

import lightning.pytorch as L
import torch

from runicorn_lite.integrations.lightning import RunicornLogger

warnings.filterwarnings("ignore")


class Ranked(L.LightningModule):
    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Linear(3, 1)

    def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss, sync_dist=True)
        self.log("rank", float(self.global_rank))  # each process logs its own rank: only 0 may reach the run
        return loss

    def configure_optimizers(self):  # type: ignore[no-untyped-def]
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


if __name__ == "__main__":
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_fork", max_epochs=2, log_every_n_steps=1,
                        logger=RunicornLogger(project="ddp", name="two", root=sys.argv[1]),
                        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False)
    trainer.fit(Ranked(), data)
    print(f"rank {trainer.global_rank} done", flush=True)
