"""Deployment through ExecuTorch (shared by every method): export with XNNPACK, check delegation, run.

A fragmented graph (ops falling back to ExecuTorch's portable kernels) would make every latency
measurement a measurement of the fallbacks, not of the architecture, so :func:`lower_to_executorch`
counts the ``call_function`` nodes left outside the XNNPACK delegate and :func:`check_delegation`
rejects any op not in an explicit allow-list (token gather and KV-cache scatter).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

# Ops that stay outside the delegate by design: the embedding gather (prefill and decode) and, in the
# static-cache decode graph, the position-row gathers and the in-place cache update.
PREFILL_ALLOWED = frozenset({"aten.embedding.default"})
DECODE_ALLOWED = frozenset({"aten.embedding.default", "aten.index_select.default", "aten.index_put.default"})


def executorch_available() -> bool:
    """True when ``executorch`` (with the XNNPACK partitioner and the Python runtime) imports."""
    try:
        import executorch.backends.xnnpack.partition.xnnpack_partitioner  # noqa: F401
        import executorch.runtime  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return False
    return True


@dataclass
class LoweredProgram:
    """An ExecuTorch program and what was left outside the XNNPACK delegate.

    Attributes:
        buffer: the serialized ``.pte`` bytes.
        n_delegates: number of ``executorch_call_delegate`` nodes (segments).
        non_delegated: op names of the other ``call_function`` nodes (``getitem`` excluded).
        export_s: wall time of export + lowering.
    """

    buffer: bytes
    n_delegates: int
    non_delegated: list[str] = field(default_factory=list)
    export_s: float = 0.0

    @property
    def size_mb(self) -> float:
        return len(self.buffer) / 1e6


def _op_name(target: object) -> str:
    """``'aten.embedding.default'`` from an edge op (``<EdgeOpOverload: aten.x.default>: schema = ...``)."""
    text = str(target)
    if text.startswith("<EdgeOpOverload:"):
        return text.split(">", 1)[0].split(":", 1)[1].strip()
    return getattr(target, "__name__", text)


def lower_to_executorch(module: nn.Module, example_inputs: tuple[Tensor, ...]) -> LoweredProgram:
    """``torch.export`` (under ``no_grad``, needed for in-place cache buffers) and XNNPACK lowering."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    start = time.perf_counter()
    module = module.eval()
    with torch.no_grad():
        exported = torch.export.export(module, example_inputs)
        edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    n_delegates, others = 0, []
    for node in edge.exported_program().graph.nodes:
        if node.op != "call_function":
            continue
        name = _op_name(node.target)
        if "executorch_call_delegate" in name:
            n_delegates += 1
        elif "getitem" not in name:
            others.append(name)
    buffer = edge.to_executorch().buffer
    return LoweredProgram(bytes(buffer), n_delegates, others, time.perf_counter() - start)


def check_delegation(program: LoweredProgram, allowed: frozenset[str] | Sequence[str]) -> None:
    """Raise RuntimeError naming the non-delegated ops that are not in ``allowed``."""
    extra = sorted({op for op in program.non_delegated if op not in set(allowed)})
    if extra:
        raise RuntimeError(f"graph is not fully delegated to XNNPACK; portable fallbacks: {', '.join(extra)}")


def set_executorch_threads(threads: int) -> None:
    """Pin ExecuTorch's thread pool (and torch's) to ``threads``."""
    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

    _unsafe_reset_threadpool(threads)
    torch.set_num_threads(threads)


class ExecuTorchRunner:
    """Load a lowered program's ``forward`` once and run it: ``runner(*inputs) -> first output``."""

    def __init__(self, program: LoweredProgram | bytes) -> None:
        from executorch.runtime import Runtime

        # The runtime does not copy the bytes: keep them (and the program) alive as long as the method.
        self.buffer = program.buffer if isinstance(program, LoweredProgram) else program
        self.program = Runtime.get().load_program(self.buffer)
        self.method = self.program.load_method("forward")

    def __call__(self, *inputs: Tensor) -> Tensor:
        return self.method.execute(list(inputs))[0]
