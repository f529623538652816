"""One epoch of jsc-three-linear-layers on 630,000 synthetic-jsc training rows at batch 256:
netcarve's tensor-resident loop against a baseline written the way MASE trains (Lightning ``Trainer`` +
``LightningModule`` with torchmetrics accuracy + ``DataLoader`` over a per-sample ``Dataset``,
num_workers=0). Same model, batch size, optimizer, number of optimizer steps and validation pass.

Run: ``make bench`` or ``.venv/bin/python bench/train_throughput.py [--rows 900000]`` (needs the ``bench``
extra: lightning, torchmetrics). Prints both times and, last, ``speedup: N.Nx``.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
import warnings

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from mase_baseline import PerSampleDataset
from netcarve.data import load_dataset
from netcarve.data.base import TensorSplits
from netcarve.models import create_model
from netcarve.train import TrainConfig, fit

BATCH = 256
LR = 1e-3


def lightning_epoch(splits: TensorSplits, seed: int, limit: int | None = None) -> tuple[float, int]:
    import lightning as L
    import torchmetrics

    class Wrapper(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = create_model("jsc-three-linear-layers", splits.info)
            n = splits.info.num_classes
            self.acc_train = torchmetrics.Accuracy(task="multiclass", num_classes=n)
            self.acc_val = torchmetrics.Accuracy(task="multiclass", num_classes=n)
            self.loss_val = torchmetrics.MeanMetric()
            self.steps = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x)

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], idx: int) -> torch.Tensor:
            x, y = batch
            out = self(x)
            loss = F.cross_entropy(out, y)
            self.acc_train(out, y)
            self.log("train_acc_step", self.acc_train, prog_bar=True)
            self.log("train_loss_step", loss)
            self.steps += 1
            return loss

        def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], idx: int) -> None:
            x, y = batch
            out = self(x)
            self.acc_val(out, y)
            self.loss_val(F.cross_entropy(out, y))
            self.log("val_acc", self.acc_val)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=LR)

    L.seed_everything(seed, verbose=False)
    module = Wrapper()
    train = DataLoader(PerSampleDataset(splits.train), batch_size=BATCH, shuffle=True, num_workers=0)
    val = DataLoader(PerSampleDataset(splits.val), batch_size=BATCH, shuffle=False, num_workers=0)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_train_batches=limit,
        limit_val_batches=limit,
    )
    start = time.perf_counter()
    trainer.fit(module, train, val)
    return time.perf_counter() - start, module.steps


def netcarve_epoch(splits: TensorSplits, seed: int, limit: int | None = None) -> tuple[float, int]:
    torch.manual_seed(seed)
    model = create_model("jsc-three-linear-layers", splits.info)
    start = time.perf_counter()
    cfg = TrainConfig(max_epochs=1, max_steps=limit, batch_size=BATCH, learning_rate=LR, seed=seed)
    result = fit(model, splits, cfg)
    return time.perf_counter() - start, result.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=900_000, help="synthetic rows (70 %% become the train split)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    splits = load_dataset(f"synthetic-jsc:{args.rows}")
    print(f"train rows {len(splits.train)}, batch {BATCH}, steps {math.ceil(len(splits.train) / BATCH)}")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    default_threads = torch.get_num_threads()
    # untimed warm-up of both paths: one-time imports and kernel set-up are not what is compared
    netcarve_epoch(splits, 0, limit=5)
    lightning_epoch(splits, 0, limit=5)
    ours, our_steps = netcarve_epoch(splits, 0)
    print(f"netcarve                        : {ours:8.2f} s  ({our_steps} optimizer steps + validation)")
    base_default, base_steps = lightning_epoch(splits, 0)
    line = f"lightning, {default_threads} threads (MASE default)"
    print(f"{line}: {base_default:8.2f} s  ({base_steps} steps + validation)")
    torch.set_num_threads(1)
    base, base_steps = lightning_epoch(splits, 0)
    torch.set_num_threads(default_threads)
    print(f"lightning, 1 thread (as netcarve): {base:8.2f} s  ({base_steps} steps + validation)")
    if base_steps != our_steps:
        print(f"warning: step counts differ ({our_steps} vs {base_steps})")
    print(f"speedup vs MASE's default threads: {base_default / ours:.1f}x")
    print(f"speedup: {base / ours:.1f}x")


if __name__ == "__main__":
    main()
