"""Deployment through ExecuTorch (shared by every method): export with XNNPACK, check delegation, run.

A fragmented graph (ops falling back to ExecuTorch's portable kernels) would make every latency
measurement a measurement of the fallbacks, not of the architecture, so :func:`lower_to_executorch`
counts the ``call_function`` nodes left outside the XNNPACK delegate and :func:`check_delegation`
rejects any op not in an explicit allow-list (token gather and KV-cache scatter).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from thrifty.core.io import write_bytes_atomic, write_json_atomic

# Ops that stay outside the delegate by design: the embedding gather (prefill and decode; fp32 or ExecuTorch's
# int4 quantised kernel) and, in the static-cache decode graph, the position-row gathers and the cache update.
INT4_EMBEDDING_OP = "quantized_decomposed.embedding_4bit.dtype"
PREFILL_ALLOWED = frozenset({"aten.embedding.default", INT4_EMBEDDING_OP})
DECODE_ALLOWED = frozenset(
    {"aten.embedding.default", INT4_EMBEDDING_OP, "aten.index_select.default", "aten.index_put.default"}
)


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


def lower_to_executorch(
    module: nn.Module, example_inputs: tuple[Tensor, ...], cache: str | Path | None = None
) -> LoweredProgram:
    """``torch.export`` (under ``no_grad``, needed for in-place cache buffers) and XNNPACK lowering.

    With ``cache`` (a directory), the lowered program is stored under a key of the exported graph (its code,
    every weight and constant, the input shapes and the torch / executorch versions) and reused when the same
    graph with the same weights is lowered again: XNNPACK lowering costs tens of seconds a model on a CPU core,
    ``torch.export`` about a tenth of that. ``export_s`` of a reused program is the export and lookup time.
    """
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    start = time.perf_counter()
    module = module.eval()
    with torch.no_grad():
        exported = torch.export.export(module, example_inputs)
        directory = Path(cache) if cache is not None else None
        key = _lowering_key(exported, example_inputs) if directory is not None else ""
        if directory is not None and (hit := _read_lowered(directory, key)) is not None:
            hit.export_s = time.perf_counter() - start
            return hit
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
    program = LoweredProgram(bytes(edge.to_executorch().buffer), n_delegates, others)
    if directory is not None:
        _write_lowered(directory, key, program)
    program.export_s = time.perf_counter() - start
    return program


def _lowering_key(exported: torch.export.ExportedProgram, example_inputs: tuple[Tensor, ...]) -> str:
    """sha256 of what determines the lowered program: graph code, weights, constants, input specs, versions."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    digest.update(exported.graph_module.code.encode())
    digest.update(f"{torch.__version__}|{version('executorch')}".encode())
    for t in example_inputs:
        digest.update(f"{tuple(t.shape)}{t.dtype}".encode())
    tensors = {**exported.state_dict, **{k: v for k, v in exported.constants.items() if isinstance(v, Tensor)}}
    for name in sorted(tensors):
        value = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}{tuple(value.shape)}{value.dtype}".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()[:32]


def _read_lowered(directory: Path, key: str) -> LoweredProgram | None:
    pte, meta = directory / f"{key}.pte", directory / f"{key}.json"
    if not (pte.exists() and meta.exists()):
        return None
    info = json.loads(meta.read_text())
    return LoweredProgram(pte.read_bytes(), int(info["n_delegates"]), list(info["non_delegated"]))


def _write_lowered(directory: Path, key: str, program: LoweredProgram) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(directory / f"{key}.pte", program.buffer)  # the .pte first: a reader needs both files
    info = {"n_delegates": program.n_delegates, "non_delegated": program.non_delegated}
    write_json_atomic(directory / f"{key}.json", info)


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


def int4_embedding_reference(values: Tensor, scales: Tensor, ids: Tensor) -> Tensor:
    """Plain lookup of a group-wise symmetric int4 table: ``values (V, D)`` in [-8, 7], ``scales (V, D/g)``.

    Returns ``(*ids.shape, D)`` float32: ``values[ids] * scales[ids]`` repeated over each group of ``g``.
    """
    n_groups = scales.shape[1]
    table = values.float().view(values.shape[0], n_groups, -1) * scales.float().unsqueeze(-1)
    return table.view(values.shape[0], -1)[ids]


class Int4PackedEmbedding(nn.Module):
    """An embedding table stored as int4, two values per byte, with group-wise fp32 scales.

    The lookup is ``quantized_decomposed.embedding_4bit`` (ExecuTorch's op), so an exported program keeps the
    table at 4 bits in the ``.pte`` and runs ExecuTorch's quantised kernel; eager, the op unpacks and looks up
    the same numbers as :func:`int4_embedding_reference`.

    Args:
        values: ``(V, D)`` integer tensor in [-8, 7] (``D`` even).
        scales: ``(V, D / g)`` positive scales, one per group of ``g`` columns.
    """

    def __init__(self, values: Tensor, scales: Tensor) -> None:
        super().__init__()
        if values.dim() != 2 or values.shape[1] % 2 or int(values.min()) < -8 or int(values.max()) > 7:
            raise ValueError(f"values: expected a (V, even D) tensor in [-8, 7], got shape {tuple(values.shape)}")
        if scales.dim() != 2 or scales.shape[0] != values.shape[0] or values.shape[1] % scales.shape[1]:
            raise ValueError(f"scales: expected (V, D/g) for values {tuple(values.shape)}, got {tuple(scales.shape)}")
        _load_quantized_ops()
        shifted = (values.to(torch.int16) + 8).to(torch.uint8).view(values.shape[0], -1, 2)
        self.register_buffer("packed", shifted[..., 0] * 16 + shifted[..., 1])  # high nibble first, as the op
        self.register_buffer("scales", scales.detach().float().contiguous())
        self.num_embeddings, self.embedding_dim = values.shape

    @classmethod
    def from_torchao(cls, embedding: nn.Embedding) -> Int4PackedEmbedding:
        """From an ``nn.Embedding`` whose weight torchao quantised to int4 symmetric per group (zero point 0)."""
        weight = embedding.weight
        qdata, scale = getattr(weight, "qdata", None), getattr(weight, "scale", None)
        zero = getattr(weight, "zero_point", None)
        int4 = getattr(weight, "target_dtype", None) == torch.int4
        if not int4 or qdata is None or scale is None or (zero is not None and bool(zero.any())):
            raise ValueError("embedding: expected a torchao int4 symmetric weight (qdata, scale, zero point 0)")
        return cls(qdata, scale.reshape(qdata.shape[0], -1))

    def forward(self, ids: Tensor) -> Tensor:
        """``ids (...)`` -> ``(..., D)`` float32."""
        op = torch.ops.quantized_decomposed.embedding_4bit.dtype
        return op(self.packed, self.scales, None, -8, 7, ids, dtype=torch.float32)


def _load_quantized_ops() -> None:
    """Register ExecuTorch's ``quantized_decomposed`` op definitions and their AOT out-variant kernels."""
    from thrifty.core.optional import require

    require("executorch.exir.passes._quant_patterns_and_replacements")
    require("executorch.kernels.quantized")
