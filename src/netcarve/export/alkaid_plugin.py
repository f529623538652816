"""netcarve's quantized modules in alkaid's own torch converter: the ``alkaid_torch`` plugin.

alkaid's torch tracer (``alkaid.converter.trace_model(module, inputs=…, framework="torch")``) replays a
``torch.fx`` trace of a module on symbolic fixed-point arrays; for a module class it has no handler for, it
loads the ``alkaid_torch`` entry point named after the class's top-level package. netcarve's
(``pyproject.toml``)::

    [project.entry-points.alkaid_torch]
    netcarve = "netcarve.export.alkaid_plugin:register"

:func:`register` imports :mod:`netcarve.export.alkaid_handlers`, whose handlers replay ``QuantizedLinear``,
``QuantizedConv1d``/``2d`` and ``QuantizedReLU`` with the export's own formats and rounding, so that the
logic alkaid's converter builds equals ``netcarve export --to alkaid``'s bit for bit.

**What to trace.** The firmware is not always the model as given: ``netcarve export`` folds every BatchNorm
that follows a Linear or Conv into it (requantizing its weights), and a BatchNorm before the first quantizer
is software preprocessing, outside the firmware (:mod:`netcarve.export.program`). :func:`firmware_module`
is the module the firmware computes (both done); a graph without BatchNorms (hls4ml-jet) is its own. A
quantized BatchNorm met in a trace is refused with a one-line ExportError naming this function; a *float*
``nn.BatchNorm1d``/``2d`` is alkaid's own (a float affine, not what the export computes) and out of the
plugin's reach, so trace :func:`firmware_module` of any graph that has one.

**The input** is the firmware's port (:func:`netcarve.export.alkaid.port_input`): values already quantized
by netcarve's first input quantizer (:meth:`Program.port_inputs`), one sample shaped like the graph's input
with a batch dimension of 1. :func:`trace_graph` does all of it.
"""

from __future__ import annotations

import copy
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

import torch.fx as fx

from netcarve.errors import ExportError
from netcarve.export.alkaid import port_input
from netcarve.export.program import Program, build_program
from netcarve.ir.graph import Graph
from netcarve.ir.opspecs import spec_of_module

if TYPE_CHECKING:
    from alkaid.types import CombLogic

#: the entry point (group, name, object) that pyproject.toml declares for alkaid
ENTRY_POINT = ("alkaid_torch", "netcarve", "netcarve.export.alkaid_plugin:register")


def register() -> None:
    """alkaid's plugin hook (zero arguments): importing the handlers registers them with alkaid's converter."""
    import netcarve.export.alkaid_handlers  # noqa: F401


def check_installed() -> None:
    """ExportError unless the installed metadata declares the entry point: alkaid's tracer looks it up for
    every netcarve module it replays (even with the handlers registered) and fails with a bare assertion."""
    group, name, value = ENTRY_POINT
    found = [ep.value for ep in entry_points(group=group) if ep.name == name]
    if value not in found:
        raise ExportError(
            f"alkaid cannot find netcarve's plugin (entry point {name!r} in group {group!r}): reinstall netcarve "
            "(pip install -e . or make setup) so that its metadata declares it"
        )


def _program(source: Graph | Program) -> Program:
    return source if isinstance(source, Program) else build_program(source)


def firmware_module(source: Graph | Program) -> fx.GraphModule:
    """A copy of the module the firmware computes: the program's graph (BatchNorms after a Linear or Conv
    folded into it) without the software preprocessing before the port (an input BatchNorm). Its input is
    the port's values, shaped like the graph's input. A graph the export refuses is the export's PassError."""
    program = _program(source)
    module = copy.deepcopy(program.graph.module)
    for node in list(module.graph.nodes):
        if node.name not in program.preprocess or node.op != "call_module":
            continue
        spec = spec_of_module(module.get_submodule(str(node.target)))
        if spec is not None and spec.export == "affine":  # reshapes stay: the port values are in C order
            node.replace_all_uses_with(node.args[0])
            module.graph.erase_node(node)
    module.graph.lint()
    module.recompile()
    return module.eval()


def trace_graph(source: Graph | Program) -> CombLogic:
    """``source``'s firmware traced by alkaid's own torch converter with this plugin's handlers: its
    ``predict`` on :meth:`Program.port_inputs` equals the export's (:func:`netcarve.export.alkaid.trace_program`)
    bit for bit. alkaid loads the plugin through its entry point (installed with netcarve)."""
    from alkaid.converter import trace_model
    from alkaid.trace import trace

    check_installed()
    program = _program(source)
    inp, x = port_input(program.port, (1, *program.graph.input_shape))
    _, out = trace_model(firmware_module(program), inputs=x, framework="torch")
    return trace(inp.ravel(), out)
