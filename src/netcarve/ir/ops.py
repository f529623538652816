"""Op classification: module classes (resolved along the MRO) and functions → op kind names.

Kind names are MASE's type names, used by ``by = "type"`` configs: linear, conv1d, conv2d, relu, …
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

MODULE_KINDS: dict[type[nn.Module], str] = {
    nn.Linear: "linear",
    nn.Conv1d: "conv1d",
    nn.Conv2d: "conv2d",
    nn.BatchNorm1d: "batch_norm1d",
    nn.BatchNorm2d: "batch_norm2d",
    nn.ReLU: "relu",
    nn.Softmax: "softmax",
    nn.Flatten: "flatten",
    nn.Identity: "identity",
    nn.Dropout: "dropout",
}

FUNCTION_KINDS: dict[Callable[..., Any], str] = {
    F.linear: "linear",
    F.conv1d: "conv1d",
    F.conv2d: "conv2d",
    F.relu: "relu",
    torch.relu: "relu",
    F.batch_norm: "batch_norm1d",
    F.softmax: "softmax",
    torch.softmax: "softmax",
    operator.add: "add",
    torch.add: "add",
    operator.iadd: "add",
    operator.mul: "mul",
    torch.mul: "mul",
    operator.matmul: "matmul",
    torch.matmul: "matmul",
    torch.bmm: "matmul",
    torch.flatten: "flatten",
}

METHOD_KINDS: dict[str, str] = {
    "relu": "relu",
    "add": "add",
    "mul": "mul",
    "matmul": "matmul",
    "softmax": "softmax",
    "view": "reshape",
    "reshape": "reshape",
    "flatten": "flatten",
    "transpose": "reshape",
}

#: kinds whose node holds weights and can change width
WIDTH_KINDS = frozenset({"linear", "conv1d", "conv2d"})


def module_kind(module: nn.Module) -> str:
    for cls in type(module).__mro__:
        kind = MODULE_KINDS.get(cls)
        if kind is not None:
            return kind
    return "module"


def function_kind(fn: object) -> str:
    try:
        return FUNCTION_KINDS.get(fn, "function")  # type: ignore[call-overload]
    except TypeError:  # unhashable target
        return "function"


def method_kind(name: str) -> str:
    return METHOD_KINDS.get(name, "method")
