"""One batch of members sharing a template, stacked into one model: the training driver's trainee.

Weights ``[K, out, in]``, activations features-major ``[K, F, B]``. Features-major keeps the narrow output
layer (5 classes) a wide matrix product and gives the loss its ``[K, C, B]`` layout without a copy; with
in-place ReLU, a step of 28 members at width 96 (batch 256, 2 threads) went from 13.5 to 7.4 ms. The loss
is the sum over members of each member's mean cross-entropy, so each member's gradient is its solo
gradient; the optimizer is the one ``fit`` makes, on the stacked parameters (Adam/AdamW/SGD are
elementwise, so stacking is exact). Padded weights, biases and BatchNorm affine parameters start at 0 and
their gradients are multiplied by a 0/1 mask before every step, so they, their gradients and the optimizer
state stay exactly 0.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch
from torch import nn

from netcarve.data.base import Split, TensorSplits
from netcarve.errors import TrainingError
from netcarve.train.driver import UnitEpochCallback, UnitKeepGoing, drive
from netcarve.train.loop import TrainConfig, member_losses
from netcarve.train.optim import Stepper
from netcarve.train.population.layers import build_layer
from netcarve.train.population.quant import _BLearned, region
from netcarve.train.population.template import Chain
from netcarve.train.records import MemberOutcome
from netcarve.train.resources import ResourceTerm, learned_state

#: evaluation chunk (rows), as :func:`netcarve.train.loop.evaluate`
EVAL_BATCH = 8192


class _StackTally:
    """A batch's epoch: per member, the summed loss and the correct predictions (two ops a step)."""

    def __init__(self, k: int, device: torch.device, seen: int) -> None:
        self.seen = seen
        self.loss_sum = torch.zeros(k, dtype=torch.float64, device=device)
        self.correct = torch.zeros(k, dtype=torch.int64, device=device)

    def add(self, out: torch.Tensor, losses: torch.Tensor, y: torch.Tensor, lo: int, hi: int) -> None:
        self.loss_sum.add_(losses.detach(), alpha=hi - lo)  # in float64, as a .double() copy added would be
        self.correct += (out.detach().max(dim=1).indices == y).sum(1)

    def running(self, hi: int) -> tuple[float, float]:
        k = len(self.loss_sum)
        return float(self.loss_sum.sum()) / (k * hi), int(self.correct.sum()) / (k * hi)

    def losses(self) -> list[float]:
        return (self.loss_sum / max(self.seen, 1)).tolist()

    def accuracies(self) -> list[float]:
        return (self.correct.double() / max(self.seen, 1)).tolist()


class Group:
    """Members sharing a template, trained as one stacked model (a :class:`~netcarve.train.driver.Trainee`
    whose units are the members' indices in the caller's list)."""

    def __init__(self, members: list[int], chains: list[Chain]) -> None:
        self.units = members  # indices into the caller's list, in stack order
        self.chains = chains
        self.padded = tuple(max(c.widths[i] for c in chains) for i in range(len(chains[0].widths)))
        self.device = next((p.device for m in chains[0].modules for p in m.parameters()), torch.device("cpu"))
        first = chains[0]
        self.layers = [
            build_layer([c.modules[i] for c in chains], kind, node[2:], self.padded[i], self.padded[i + 1], self.device)
            for i, (kind, node) in enumerate(zip(first.kinds, first.nodes, strict=True))
        ]
        self.start_batches = [
            [int(c.modules[i].num_batches_tracked) if kind.buffers else 0 for i, kind in enumerate(first.kinds)]  # type: ignore[arg-type]
            for c in chains
        ]
        self.has_batch_norm = first.has_batch_norm
        #: the optimizer of the last members trained (kept for inspection)
        self.optimizer: Stepper | None = None
        #: each member's resource term (learned quantizers: beta · EBOPs in its loss, its beta schedule)
        self.terms = [ResourceTerm.of(c.root) for c in chains]
        self._betas = self._beta_tensor()

    def _beta_tensor(self) -> torch.Tensor | None:
        """Each member's beta now ``[K]`` (0 without a term), or None when no member adds a resource term."""
        betas = [0.0 if t is None else t.beta for t in self.terms]
        if not any(b > 0 for b in betas):
            return None
        return torch.tensor(betas, dtype=torch.float32, device=self.device)

    def ebops(self, fresh: bool) -> torch.Tensor:
        """Each member's EBOPs ``[K]`` (learned.ebops of its module alone; ``fresh``: the training forward's
        bits)."""
        total = torch.zeros(len(self), device=self.device)
        for layer in self.layers:
            found = layer.macs_ebops(fresh)
            if found is not None:
                total = total + found
        return total

    def __len__(self) -> int:
        return len(self.units)

    def holder(self) -> nn.Module:
        holder = nn.Module()
        holder.params = nn.ParameterList(
            [p for layer in self.layers for p in (*layer.params.values(), *layer.learned())]
        )
        return holder

    def grad_masks(self) -> list[tuple[nn.Parameter, torch.Tensor]]:
        return [
            (p, mask)
            for layer in self.layers
            for name, p in layer.params.items()
            if (mask := layer.masks[name]) is not None
        ]

    def train_mode(self) -> None:
        """Nothing: the stacked forward is told whether it trains."""

    def forward(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        """Rows ``x`` ``[B, F]`` → every member's logits, features-major ``[K, C, B]``."""
        h, owned = x.t().unsqueeze(0).expand(len(self), x.shape[1], x.shape[0]), False
        for layer in self.layers:
            h, owned = layer.forward(h, training, owned)
        return h

    def forward_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.forward(x, training=True)
        member_loss = member_losses(out, y).mean(1)
        if self._betas is not None:  # as fit adds beta · EBOPs to a member's loss (a beta of 0 adds 0)
            return out, member_loss.sum() + (self._betas * self.ebops(fresh=True)).sum(), member_loss
        return out, member_loss.sum(), member_loss

    def tally(self, ys: torch.Tensor, seen: int) -> _StackTally:
        return _StackTally(len(self), self.device, seen)

    def end_epoch(self, epoch: int) -> list[tuple[float | None, float | None]]:
        """Each member's (EBOPs now, in eval mode, the beta it trained with) as its resource term gives them
        alone; a member's beta moves on. (None, None) for a member without learned quantizers."""
        if all(t is None for t in self.terms):
            return [(None, None)] * len(self)
        with torch.no_grad():
            values = self.ebops(fresh=False).tolist()
        out = [(None, None) if t is None else t.advance(epoch, v) for t, v in zip(self.terms, values, strict=True)]
        self._betas = self._beta_tensor()
        return out  # type: ignore[return-value]

    def validate(self, split: Split) -> tuple[list[float], list[float]]:
        """Per-member validation loss and accuracy (eval mode, no grad), as :func:`evaluate` computes them."""
        n = len(split)
        if n == 0:
            raise TrainingError("cannot evaluate on an empty split")
        k = len(self)
        loss_sum = torch.zeros(k, dtype=torch.float64, device=self.device)
        correct = torch.zeros(k, dtype=torch.int64, device=self.device)
        with torch.no_grad():
            for start in range(0, n, EVAL_BATCH):
                xb, yb = split.x[start : start + EVAL_BATCH], split.y[start : start + EVAL_BATCH]
                out = self.forward(xb, training=False)
                loss_sum += member_losses(out, yb).sum(1).double()
                correct += (out.max(dim=1).indices == yb).sum(1)  # as argmax (first maximum), ~15x faster here
        return (loss_sum / n).tolist(), (correct.float() / n).tolist()  # float32 accuracy, as evaluate's

    def release(self, pos: int) -> None:
        """Copy member ``pos`` (stack position) into its module, unpadded; eval mode."""
        self.write(pos)
        self.chains[pos].root.eval()

    def write(self, pos: int) -> None:
        """Copy member ``pos`` (stack position) into its module, unpadded (its mode unchanged): parameters,
        running statistics, learned state."""
        chain = self.chains[pos]
        with torch.no_grad():
            for i, (layer, module) in enumerate(zip(self.layers, chain.modules, strict=True)):
                for name, p in layer.params.items():
                    target = getattr(module, name)
                    target.copy_(p[region(pos, target.shape)])
                for name, b in layer.buffers.items():
                    target = getattr(module, name)
                    target.copy_(b[pos, : target.shape[0]])
                if layer.kind.buffers:
                    module.num_batches_tracked.fill_(self.start_batches[pos][i] + layer.forwards)  # type: ignore[operator]
                for operand, quant in layer.quant.items():
                    state = learned_state(module, operand)
                    if isinstance(quant, _BLearned) and state is not None:
                        quant.write(pos, state)

    def keep(self, positions: list[int]) -> None:
        idx = torch.tensor(positions, dtype=torch.int64, device=self.device)
        for layer in self.layers:
            layer.select(idx)
        self.units = [self.units[i] for i in positions]
        self.chains = [self.chains[i] for i in positions]
        self.start_batches = [self.start_batches[i] for i in positions]
        self.terms = [self.terms[i] for i in positions]
        self._betas = self._beta_tensor()


def train_group(
    group: Group,
    splits: TensorSplits,
    cfg: TrainConfig,
    validate: bool,
    keep_going: UnitKeepGoing | None,
    outcomes: dict[int, MemberOutcome],
    stop: threading.Event | None = None,
    on_step: Callable[[int, int], None] | None = None,
    on_epoch: UnitEpochCallback | None = None,
) -> None:
    """Train ``group``'s members together with the training driver, each outcome into ``outcomes``; ``stop``
    set ends it at the next step with :class:`~netcarve.train.driver.Stopped`. ``on_step(done, total)`` is
    called every ``cfg.log_every_n_steps`` steps and after the last one, as :func:`fit` does; ``on_epoch(member,
    record, is_best)`` after each epoch of a member, its module holding that epoch's weights."""
    started = list(group.units)
    report = None if on_step is None else lambda done, total, loss, accuracy: on_step(done, total)
    trained, group.optimizer = drive(group, splits, cfg, validate=validate, keep_going=keep_going, on_step=report,
                                     stop=stop, on_epoch=on_epoch)  # fmt: skip
    for member in started:
        trained[member].batch = len(started)
    outcomes.update(trained)
