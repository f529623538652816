"""Graph IR over torch.fx with typed per-node metadata."""

from netcarve.ir.graph import Graph, ModelSpec
from netcarve.ir.meta import FLOAT32, NodeMeta, Precision, TensorMeta
from netcarve.ir.opspecs import OPS, OpSpec, register_op
from netcarve.ir.passes import PASSES, PassResult, register_pass

__all__ = [
    "FLOAT32",
    "OPS",
    "PASSES",
    "Graph",
    "ModelSpec",
    "NodeMeta",
    "OpSpec",
    "PassResult",
    "Precision",
    "TensorMeta",
    "register_op",
    "register_pass",
]
