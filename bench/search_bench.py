"""Search throughput: netcarve against a search written the way MASE runs one, in trials per minute.

(a) eval mode: 20 post-training-quantization trials of jsc-toy (a checkpoint, three Linear layers searched
    by name, brute force so that no configuration repeats), evaluated on the validation split of
    synthetic-jsc:630000 (63,000 rows);
(b) retrain: 10 width trials of jsc-three-linear-layers (Lab 4's space, brute force), each retrained for one
    epoch (441,000 rows, batch 256) and evaluated on the validation split.

netcarve runs ``netcarve search``'s code path (study in a journal file, analysis, user attributes, reuse
checks). The baseline does what MASE's search did per trial: deep-copy one shared graph, apply the same
transform (netcarve's passes, so only the loop differs), then Lightning ``Trainer.validate`` (a) or
``Trainer.fit`` with a validation loader (b) over ``DataLoader``s of a per-sample ``Dataset`` (torchmetrics
accuracy, num_workers=0), with the same candidates and thread count.

(c) firmware metrics (only when alkaid is installed): an eval-mode brute-force search of hls4ml-jet over
    weight widths 3–8 (every layer integer, so every candidate is exportable) with objectives accuracy and
    ``fpga_luts``: the share of the trials' time spent in alkaid's trace (``netcarve.analysis.fpga``), with
    an empty trace cache.

Run: ``.venv/bin/python bench/search_bench.py`` (needs the ``bench`` extra: lightning, torchmetrics;
``--fpga-only`` runs only (c) and needs neither). Last line: ``search speedup: eval N.Nx, retrain N.Nx``.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import logging
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from mase_baseline import PerSampleDataset
from netcarve.config.loader import validate_config
from netcarve.data import load_dataset
from netcarve.data.base import TensorSplits
from netcarve.ir.graph import Graph
from netcarve.ir.replay import apply_transforms
from netcarve.search.api import finish, prepare_search, start_search
from netcarve.search.record import TrialRecord
from netcarve.search.runner import run_study
from netcarve.train.checkpoint import build_graph, save_checkpoint

ROWS = 630_000
BATCH = 256
EVAL_TRIALS, RETRAIN_TRIALS = 20, 10
QUANT_LEAVES = {"name": ["integer"], "data_in_width": [4, 8], "weight_width": [2, 4, 8], "bias_width": [2, 4, 8]}


def search_config(tmp: Path, kind: str, load: str | None, rows: int) -> dict[str, Any]:
    if kind == "eval":
        seed = {
            "default": {"config": {"name": [None]}},
            **{f"seq_blocks_{i}": {"config": QUANT_LEAVES} for i in (2, 5, 8)},
        }
        space, model, n, strategy = "graph/quantize/mixed_precision_ptq", "jsc-toy", EVAL_TRIALS, {"eval_mode": True}
    else:
        seed = {
            "seq_blocks_2": {"config": {"name": ["output_only"], "channel_multiplier": [1, 2, 3, 4, 5, 6]}},
            "seq_blocks_4": {"config": {"name": ["both"], "channel_multiplier": [1, 2, 3, 4, 5, 6]}},
        }
        space, model, n = "graph/width/channel_multiplier", "jsc-three-linear-layers", RETRAIN_TRIALS
        strategy = {"eval_mode": False, "sw_runner": {"basic_train": {"max_epochs": 1, "batch_size": BATCH}}}
    strategy["setup"] = {"sampler": "brute_force", "n_trials": n}
    strategy["metrics"] = {"accuracy": {"direction": "maximize"}}
    return {
        "model": model, "dataset": f"synthetic-jsc:{rows}", "project": f"bench-{kind}", "project_dir": str(tmp),
        "load_name": load, "search": {"search_space": {"name": space, "seed": seed}, "strategy": strategy},
    }  # fmt: skip


def run_netcarve(data: dict[str, Any]) -> tuple[float, list[Any]]:
    """Seconds of the study's trials (setup excluded, as for the baseline) and the trials."""
    session = start_search(prepare_search(validate_config(data)), None, None)
    start = time.perf_counter()
    run_study(session, 1, None, lambda: None)
    seconds = time.perf_counter() - start
    finish(session)
    return seconds, session.study.get_trials()


def lightning_module(model: nn.Module, num_classes: int) -> Any:
    import lightning as L
    import torchmetrics

    class Wrapper(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.acc_val = torchmetrics.Accuracy(task="multiclass", num_classes=num_classes)
            self.loss_val = torchmetrics.MeanMetric()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x)  # type: ignore[no-any-return]

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], idx: int) -> torch.Tensor:
            loss = F.cross_entropy(self(batch[0]), batch[1])
            self.log("train_loss_step", loss)
            return loss

        def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], idx: int) -> None:
            out = self(batch[0])
            self.acc_val(out, batch[1])
            self.loss_val(F.cross_entropy(out, batch[1]))
            self.log("val_acc", self.acc_val)
            self.log("val_loss", self.loss_val)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    return Wrapper()


def average_bitwidth(graph: Graph) -> float:
    """MASE's hardware runner: mean stored bits over the parameters (quantized widths from the metadata)."""
    bits = total = 0
    for node in graph.compute_nodes():
        if node.op != "call_module":
            continue
        meta = graph.meta(node)
        for name, p in graph.submodule(node).named_parameters(recurse=False):
            bits += p.numel() * meta.operand_precision(name).width
            total += p.numel()
    return bits / max(total, 1)


def run_baseline(shared: Graph, splits: TensorSplits, transforms: list[Any], train: bool) -> tuple[float, list[float]]:
    import lightning as L

    val = DataLoader(PerSampleDataset(splits.val), batch_size=BATCH, shuffle=False, num_workers=0)
    accuracies = []
    start = time.perf_counter()
    for candidate in transforms:
        graph = apply_transforms(copy.deepcopy(shared), [(n, c) for n, c in candidate])
        module = lightning_module(graph.module, splits.info.num_classes)
        trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
        if train:
            loader = DataLoader(PerSampleDataset(splits.train), batch_size=BATCH, shuffle=True, num_workers=0)
            trainer.fit(module, loader, val)
            accuracies.append(float(trainer.callback_metrics["val_acc"]))
        else:
            accuracies.append(float(trainer.validate(module, val, verbose=False)[0]["val_acc"]))
        average_bitwidth(graph)
    return time.perf_counter() - start, accuracies


def warm_up(splits: TensorSplits) -> None:
    """First-use costs (lazy imports of the fused optimizer, Lightning's first Trainer) are paid here, untimed."""
    import lightning as L

    model = build_graph("jsc-three-linear-layers", splits.info).module
    torch.optim.Adam(model.parameters(), fused=True).step()
    small = DataLoader(PerSampleDataset(splits.val.head(512)), batch_size=BATCH)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(lightning_module(model, splits.info.num_classes), small, small)


def compare(kind: str, tmp: Path, splits: TensorSplits, rows: int) -> float:
    load = None
    model = "jsc-toy" if kind == "eval" else "jsc-three-linear-layers"
    torch.manual_seed(42)
    shared = build_graph(model, splits.info)
    if kind == "eval":
        load = str(save_checkpoint(tmp / "base.pt", shared, {}))
    ours, trials = run_netcarve(search_config(tmp, kind, load, rows))
    done = [t for t in trials if t.state.name == "COMPLETE"]
    transforms = [t.user_attrs["transforms"] for t in done]
    base, accuracies = run_baseline(shared, splits, transforms, train=kind != "eval")
    per_min_ours, per_min_base = 60 * len(done) / ours, 60 * len(done) / base
    mine = [TrialRecord.of(t).metrics["accuracy"] for t in done]
    gap = max(abs(a - b) for a, b in zip(mine, accuracies, strict=True))
    print(f"({kind}) {len(done)} trials: netcarve {ours:7.2f} s = {per_min_ours:7.1f} trials/min; "
          f"baseline {base:7.2f} s = {per_min_base:6.1f} trials/min; ratio {per_min_ours / per_min_base:.1f}x; "
          f"max accuracy difference {gap:.4f}")  # fmt: skip
    return per_min_ours / per_min_base


FPGA_WIDTHS = [3, 4, 5, 6, 7, 8]


def fpga_share(tmp: Path, rows: int) -> None:
    """(c): seconds in alkaid's trace over seconds of the study, per trial."""
    import netcarve.analysis.fpga as fpga

    real = fpga.fpga_costs
    spent: list[float] = []

    def timed(graph: Graph, *, per_layer: bool = True) -> fpga.FpgaCosts:
        start = time.perf_counter()
        try:
            return real(graph, per_layer=per_layer)
        finally:
            spent.append(time.perf_counter() - start)

    leaves = {"name": ["integer"], "data_in_width": [8], "weight_width": FPGA_WIDTHS, "bias_width": [8]}
    strategy: dict[str, Any] = {"eval_mode": True, "setup": {"sampler": "brute_force"}}
    strategy["metrics"] = {"accuracy": {"direction": "maximize"}, "fpga_luts": {"direction": "minimize"}}
    data = {
        "model": "hls4ml-jet", "dataset": f"synthetic-jsc:{rows}", "project": "bench-fpga", "project_dir": str(tmp),
        "search": {"search_space": {"name": "graph/quantize/mixed_precision_ptq", "setup": {"by": "type"},
                                    "seed": {"default": {"config": leaves}}}, "strategy": strategy},
    }  # fmt: skip
    fpga.clear_cache()
    fpga.fpga_costs = timed
    try:
        seconds, trials = run_netcarve(data)
    finally:
        fpga.fpga_costs = real
    luts = [TrialRecord.of(t).metrics["fpga_luts"] for t in trials if t.state.name == "COMPLETE"]
    print(f"(fpga) {len(trials)} trials in {seconds:.2f} s; alkaid traces {sum(spent):.2f} s = "
          f"{100 * sum(spent) / seconds:.0f} % of trial time (per trial {min(spent):.2f}–{max(spent):.2f} s); "
          f"fpga_luts {min(luts):,.0f}–{max(luts):,.0f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=ROWS, help="synthetic-jsc rows (70 %% train, 10 %% val)")
    parser.add_argument("--fpga-only", action="store_true", help="run only the firmware-metrics section (c)")
    args = parser.parse_args()
    rows = args.rows
    has_alkaid = importlib.util.find_spec("alkaid") is not None
    if args.fpga_only:
        import optuna

        logging.basicConfig(level=logging.WARNING)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if not has_alkaid:
            print("(fpga) skipped: alkaid is not installed (pip install 'netcarve[fpga]')")
            return
        with tempfile.TemporaryDirectory() as tmp:
            fpga_share(Path(tmp), rows)
        return
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    import lightning  # noqa: F401  (it configures its loggers on import)
    import optuna

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    splits = load_dataset(f"synthetic-jsc:{rows}")
    threads = torch.get_num_threads()
    print(f"synthetic-jsc:{rows}: train {len(splits.train)}, val {len(splits.val)}; torch threads {threads}")
    warm_up(splits)
    with tempfile.TemporaryDirectory() as tmp:
        eval_ratio = compare("eval", Path(tmp), splits, rows)
        retrain_ratio = compare("retrain", Path(tmp), splits, rows)
        if has_alkaid:
            fpga_share(Path(tmp), rows)
        else:
            print("(fpga) skipped: alkaid is not installed (pip install 'netcarve[fpga]')")
    print(f"search speedup: eval {eval_ratio:.1f}x, retrain {retrain_ratio:.1f}x")


if __name__ == "__main__":
    main()
