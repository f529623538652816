"""How many retrained candidates one process trains together (``setup.population``).

``population = K`` trains up to K claimed trials as one batched model (:mod:`netcarve.train.population`);
``1`` trains them one by one. ``"auto"`` (the default) chooses:

- at most :data:`AUTO_MAX` (32) candidates, and at most as many as fit :func:`memory_budget` (a quarter of
  the free memory of the training device, at most 2 GiB), sized from the base model at the largest width a
  width search may give it;
- for samplers that learn from earlier results (TPE, GP, NSGA-II/III) at most a quarter of the study's
  trials, so the sampler still sees results before it proposes most of its points (TPE runs with
  ``constant_liar``: members of one population are not proposed on top of each other);
- at most the study's trials shared among its ``n_jobs`` workers (each gets a share);
- 1 when candidates are not retrained (eval mode: there is no training to batch).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from netcarve.search.samplers import SAMPLERS

if TYPE_CHECKING:
    from netcarve.search.session import Session

log = logging.getLogger(__name__)

#: the largest population "auto" chooses
AUTO_MAX = 32
#: the most memory "auto" lets one population take
BUDGET_CAP = 2 * 2**30
#: a width search may multiply a layer's width; "auto" sizes members as if the base were this much wider
WIDTH_HEADROOM = 4


def memory_budget(free: int | None) -> int:
    """Bytes a population may take: a quarter of ``free`` memory, at most :data:`BUDGET_CAP`."""
    return BUDGET_CAP if free is None else min(BUDGET_CAP, free // 4)


def population_size(session: Session) -> int:
    """The population this process trains (see the module docstring)."""
    prepared = session.prepared
    plan = prepared.plan
    if not prepared.retrain:
        return 1
    if plan.population != "auto":
        return int(plan.population)
    from netcarve.device import available_memory
    from netcarve.train.population import member_bytes

    module = prepared.base.module
    device = next((p.device for p in module.parameters()), None)
    per_member = member_bytes(module, plan.train.batch_size) * WIDTH_HEADROOM**2
    size = max(1, min(AUTO_MAX, memory_budget(available_memory(device)) // max(per_member, 1)))
    target = session.target
    if target is not None:  # every worker gets a share
        size = min(size, -(-target // plan.n_jobs))
    if target is not None and SAMPLERS.get(plan.sampler).learns:
        size = min(size, max(1, target // 4))
    log.debug("population auto: %d (%.1f MiB a member at most)", size, per_member / 2**20)
    return size
