"""Cutting a template group into batches of similar widths by a fitted step-time model.

Padding a narrow member to a wide one costs the wide one's compute (at widths 64 a step is bound by the
matrix products), so a template group is cut into batches of similar widths by a fitted step-time model
(:data:`STEP_MEMBER_COST`, :data:`STEP_WEIGHT_COST`), merging batches while that lowers the modelled total.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

from netcarve.ir.opspecs import spec_of_kind
from netcarve.train.population.template import Chain

#: cost model of one step of a batched group, in units of its fixed cost (the op launches of one step), per
#: member and per padded Linear weight at batch 256. Fitted (least squares) to one step on 1 thread of
#: jsc-three-linear-layers groups, K = 1, 4, 12, 32 members at hidden widths 16, 32, 64, 96: float ≈ 0.31 ms
#: + K · (0.026 ms + 0.033 µs per padded weight); integer-quantized: about the same ratios.
STEP_MEMBER_COST, STEP_WEIGHT_COST = 0.08, 1e-4
#: the fixed cost of a batch grows by this per quantized operand of the template (its quantizer's ops): with
#: 1 + 0.25 · 9 for integer-quantized jsc-three-linear-layers (1.6 ms vs 0.5 ms), 32 members of widths 16…64
#: train faster in fewer batches (measured: one batch 7.0 s an epoch of 100k rows, 4 batches 8.0 s)
STEP_QUANT_COST = 0.25


def _is_product(kind: str) -> bool:
    """A node whose step is a matrix product (its kind's cost family is ``mac``)."""
    spec = spec_of_kind(kind)
    return spec is not None and spec.count == "mac"


def _products(key: tuple[Any, ...]) -> tuple[bool, ...]:
    """Per node of template ``key``: whether it is a matrix product."""
    return tuple(_is_product(node[0]) for node in key[3])


def _padded_weights(widths: Sequence[Sequence[int]], products: Sequence[bool]) -> int:
    """Matrix-product weights of the model padded to the largest of ``widths`` (member node widths) at each
    node (``products``: which nodes are matrix products)."""
    top = [max(w[i] for w in widths) for i in range(len(widths[0]))]
    return sum(top[i] * top[i + 1] for i, product in enumerate(products) if product)


def batch_cost(
    key: tuple[Any, ...], top: Sequence[int], k: int, batch_size: int, products: Sequence[bool] | None = None
) -> float:
    """Modelled step time (on one thread) of a batch of ``k`` members of template ``key`` padded to widths
    ``top``, in units of an unquantized batch's fixed cost: fixed cost (more per quantized operand), and per
    member a member cost and the padded weights' cost (the matrix products; ``products``: the key's, when
    known)."""
    fixed = 1 + STEP_QUANT_COST * sum(len(node[1]) for node in key[3])
    per_weight = STEP_WEIGHT_COST * _padded_weights([top], _products(key) if products is None else products)
    return fixed + k * batch_size / 256 * (STEP_MEMBER_COST + per_weight)


def partition_by_width(members: list[tuple[int, Chain]], batch_size: int) -> list[list[tuple[int, Chain]]]:
    """Split a template group into batches of similar widths: padding a narrow member to a wide one costs
    the wide one's compute. The modelled step time of a batch is :func:`batch_cost` (one thread: with
    several, the batches train side by side, each on a share of them). Starting from one batch
    per member, the two batches whose merge lowers the total most are merged until no merge lowers it. (A
    width search's grid has one width per layer: Lab 4's 36 candidates cut into runs of one size order cost
    7.5 ms a step by the model, merged this way 6.4 ms.)"""
    key = members[0][1].key
    products = _products(key)

    def cost(top: tuple[int, ...], k: int) -> float:
        return batch_cost(key, top, k, batch_size, products)

    batches: dict[int, tuple[tuple[int, ...], list[tuple[int, Chain]]]] = {
        n: (m[1].widths, [m]) for n, m in enumerate(members)
    }

    def delta(a: int, b: int) -> float:
        (top_a, ms_a), (top_b, ms_b) = batches[a], batches[b]
        top = tuple(map(max, top_a, top_b))
        return cost(top, len(ms_a) + len(ms_b)) - cost(top_a, len(ms_a)) - cost(top_b, len(ms_b))

    heap = [(delta(a, b), a, b) for a in batches for b in batches if a < b]
    heapq.heapify(heap)
    fresh = len(members)
    while heap:
        gain, a, b = heapq.heappop(heap)
        if gain >= 0:
            break
        if a not in batches or b not in batches:
            continue  # one of them was merged already
        (top_a, ms_a), (top_b, ms_b) = batches.pop(a), batches.pop(b)
        batches[fresh] = (tuple(map(max, top_a, top_b)), ms_a + ms_b)
        for other in batches:
            if other != fresh:
                heapq.heappush(heap, (delta(other, fresh), other, fresh))
        fresh += 1
    chunks = [sorted(ms, key=lambda m: m[0]) for _, ms in batches.values()]
    return sorted(chunks, key=lambda ms: (_padded_weights([m[1].widths for m in ms], products), ms[0][0]))
