"""Graph IR over torch.fx with typed per-node metadata."""

from netcarve.ir.graph import Graph, ModelSpec
from netcarve.ir.meta import FLOAT32, NodeMeta, Precision, TensorMeta
from netcarve.ir.passes import PASSES, PassResult, register_pass

__all__ = [
    "FLOAT32",
    "PASSES",
    "Graph",
    "ModelSpec",
    "NodeMeta",
    "PassResult",
    "Precision",
    "TensorMeta",
    "register_pass",
]
