"""Weight quantization by hand: int8 and int4, symmetric or with a zero point, per tensor, channel or group (lesson 09).

A block of float weights w shares one scale s (and, when asymmetric, one zero point z); each weight becomes a
small integer q:
    symmetric    q = clamp(round(w / s), -qmax, qmax)          s = max|w| / qmax                   w ~ s q
    asymmetric   q = clamp(round(w / s) + z, 0, 2^b - 1)       s = (max - min) / (2^b - 1)         w ~ s (q - z)
                                                               z = round(-min / s), min <= 0 <= max
with qmax = 2^(b-1) - 1 (127 for int8, 7 for int4). Rounding moves a weight by at most half a step, s / 2.
The block is the whole tensor ("tensor"), one output row ("channel") or `group_size` neighbouring weights of
a row ("group"; llama.cpp's q4 formats use 32). Scales are stored in float16 (rounded up, so the largest
weight still fits), zero points in uint8, and 4-bit integers two to a byte.

Public API
- `QuantSpec(bits, symmetric, granularity, group_size)`; `quantize(w, spec)` -> `QuantizedTensor`, whose
  `dequantize()` gives floats back; `pack_int4` / `unpack_int4`.
- `QuantLinear`: an nn.Linear stored as integers, dequantized on the fly in every forward pass.
- `FusedQuantLinear`: the same integers handed to PyTorch's fused weight-only CPU kernels
  (`torch._weight_int8pack_mm`, `torch._weight_int4pack_mm_for_cpu`), which multiply without building the float
  weight; they run with bfloat16 activations (lesson 10: why this makes decoding faster). With int8_activations,
  int8 weights meet activations quantized to int8 on the fly (PyTorch's dynamic int8 kernel, fbgemm/oneDNN),
  so the products themselves are integer dot products.
- `quantize_model(model, bits, group_size, symmetric, skip, fused, int8_activations)`: a copy whose nn.Linear
  layers are QuantLinear (or FusedQuantLinear).
- `size_on_disk(model)`: bytes of the model written as safetensors; `agreement(a, b)`: share of equal answers.
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

GRANULARITIES = ("tensor", "channel", "group")
INT4_OFFSET = 8  # a symmetric int4 value q in [-7, 7] is stored as the nibble q + 8


@dataclass(frozen=True)
class QuantSpec:
    """How to store a weight: `bits` (8 or 4), symmetric or with a zero point, and which weights share a scale."""

    bits: int = 8
    symmetric: bool = True
    granularity: str = "channel"  # "tensor", "channel" (one scale per output row) or "group"
    group_size: int = 32  # weights per scale when granularity is "group"

    def __post_init__(self):
        if self.bits not in (4, 8):
            raise ValueError(f"bits must be 8 or 4, got {self.bits}")
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"unknown granularity {self.granularity!r}; expected one of {GRANULARITIES}")
        if self.granularity == "group" and (self.group_size < 2 or self.group_size % 2):
            raise ValueError(f"group_size must be an even number >= 2, got {self.group_size}")

    @property
    def qmin(self) -> int:
        """Smallest integer: -qmax when symmetric (so that 0 sits in the middle), else 0."""
        return -self.qmax if self.symmetric else 0

    @property
    def qmax(self) -> int:
        """Largest integer: 2^(b-1) - 1 when symmetric (127, 7), else 2^b - 1 (255, 15)."""
        return 2 ** (self.bits - 1) - 1 if self.symmetric else 2**self.bits - 1


def to_blocks(w: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """View a weight (out, in) as (n_blocks, block_size): one row per shared scale."""
    if spec.granularity == "tensor":
        return w.reshape(1, -1)
    if spec.granularity == "channel":
        return w.reshape(w.shape[0], -1)
    if w.shape[-1] % spec.group_size:
        raise ValueError(f"group_size {spec.group_size} does not divide the rows of a weight shaped {tuple(w.shape)}")
    return w.reshape(-1, spec.group_size)


def pack_int4(values: torch.Tensor) -> torch.Tensor:
    """Integers in [0, 15], (..., n) with n even -> uint8 (..., n/2): value 2i in the low nibble, 2i + 1 in the high
    one."""
    if values.shape[-1] % 2:
        raise ValueError(f"packing two 4-bit values per byte needs an even last dimension, "
                         f"got shape {tuple(values.shape)}")
    if values.numel() and not 0 <= int(values.min()) <= int(values.max()) <= 15:
        raise ValueError(f"4-bit values must lie in [0, 15], got {int(values.min())} to {int(values.max())}")
    values = values.to(torch.uint8)
    return values[..., 0::2] | (values[..., 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """uint8 (..., n/2) -> uint8 (..., n) in [0, 15]: the inverse of `pack_int4`."""
    return torch.stack([packed & 0x0F, packed >> 4], dim=-1).flatten(-2)


def _float16_at_least(x: torch.Tensor) -> torch.Tensor:
    """x as float16, rounded up where rounding to nearest went down; never 0 (a block of zeros gets the tiniest
    step)."""
    x = x.clamp(min=2.0**-24)
    half = x.half()
    return torch.where(half.float() < x, torch.nextafter(half, torch.full_like(half, float("inf"))), half)


@dataclass
class QuantizedTensor:
    """A weight stored as integers: data (int8, uint8, or packed uint8 for 4 bits), float16 scale and uint8 zero point
    per block."""

    data: torch.Tensor  # (n_blocks, block_size), or (n_blocks, block_size / 2) when 4-bit
    scale: torch.Tensor  # (n_blocks, 1) float16
    zero_point: torch.Tensor | None  # (n_blocks, 1) uint8, None when symmetric
    shape: tuple[int, ...]
    spec: QuantSpec

    def integers(self) -> torch.Tensor:
        """The integers q (n_blocks, block_size) as int32, unpacked and with the int4 storage offset removed."""
        if self.spec.bits == 8:
            return self.data.int()
        return unpack_int4(self.data).int() - (INT4_OFFSET if self.spec.symmetric else 0)

    def dequantize(self) -> torch.Tensor:
        """Float32 weights of the original shape: s q (symmetric) or s (q - z)."""
        q = self.integers()
        if self.zero_point is not None:
            q = q - self.zero_point.int()
        return (q.float() * self.scale.float()).reshape(self.shape)

    def nbytes(self) -> int:
        """Memory of the stored integers, scales and zero points."""
        parts = [self.data, self.scale] + ([self.zero_point] if self.zero_point is not None else [])
        return sum(t.numel() * t.element_size() for t in parts)


def quantize(w: torch.Tensor, spec: QuantSpec) -> QuantizedTensor:
    """Quantize a float tensor (out, in) as `spec` says; the error of each weight is at most half its block's step."""
    if spec.bits == 4 and spec.granularity != "group" and to_blocks(w, spec).shape[1] % 2:
        raise ValueError(f"4-bit packing needs an even number of weights per block, "
                         f"got a weight shaped {tuple(w.shape)}")
    blocks = to_blocks(w.detach().float(), spec)  # (n_blocks, block_size)
    if spec.symmetric:
        scale = _float16_at_least(blocks.abs().amax(dim=1, keepdim=True) / spec.qmax)  # (n_blocks, 1)
        q, zero = torch.round(blocks / scale.float()), None
    else:
        low, high = blocks.amin(dim=1, keepdim=True).clamp(max=0), blocks.amax(dim=1, keepdim=True).clamp(min=0)
        scale = _float16_at_least((high - low) / spec.qmax)
        zero = torch.round(-low / scale.float()).clamp(0, spec.qmax)  # the integer that stands for 0.0
        q, zero = torch.round(blocks / scale.float()) + zero, zero.to(torch.uint8)
    q = q.clamp(spec.qmin, spec.qmax)
    if spec.bits == 4:
        data = pack_int4(q + (INT4_OFFSET if spec.symmetric else 0))
    else:
        data = q.to(torch.int8 if spec.symmetric else torch.uint8)
    return QuantizedTensor(data, scale, zero, tuple(w.shape), spec)


class QuantLinear(nn.Module):
    """An nn.Linear whose weight is kept as integers (buffers qweight, scale, zero_point) and dequantized in every
    forward."""

    def __init__(self, linear: nn.Linear, spec: QuantSpec):
        super().__init__()
        self.in_features, self.out_features, self.spec = linear.in_features, linear.out_features, spec
        quantized = quantize(linear.weight, spec)
        self.register_buffer("qweight", quantized.data)
        self.register_buffer("scale", quantized.scale)
        self.register_buffer("zero_point", quantized.zero_point)  # None (symmetric) is left out of the state dict
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    @property
    def quantized(self) -> QuantizedTensor:
        """The stored weight as a QuantizedTensor."""
        return QuantizedTensor(self.qweight, self.scale, self.zero_point, (self.out_features, self.in_features),
                               self.spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.quantized.dequantize(), self.bias)  # (..., out_features)

    def extra_repr(self) -> str:
        kind = "symmetric" if self.spec.symmetric else "asymmetric"
        block = (f"groups of {self.spec.group_size}" if self.spec.granularity == "group"
                 else f"per {self.spec.granularity}")
        return f"in_features={self.in_features}, out_features={self.out_features}, int{self.spec.bits} {kind}, {block}"


INT4_KERNEL_GROUPS = (32, 64, 128, 256)  # group sizes PyTorch's int4 CPU kernel takes


class FusedQuantLinear(nn.Module):
    """An nn.Linear quantized as `QuantLinear` would be (symmetric int8 per channel, or symmetric int4 in groups),
    multiplied by PyTorch's fused weight-only CPU kernels: activations in bfloat16, weights never turned into floats.

    int8: y = (x @ q^T) * s per output row. int4: the kernel computes w = (nibble - 8) * s + zero per group, which with
    zero = 0 is our symmetric int4 (nibble = q + 8) exactly; only the scales are rounded from float16 to bfloat16.
    """

    def __init__(self, linear: nn.Linear, spec: QuantSpec, int8_activations: bool = False):
        super().__init__()
        if int8_activations and spec.bits != 8:
            raise ValueError(f"int8 activations go with int8 weights (the dynamic int8 kernel), got {spec}")
        if not spec.symmetric or spec.granularity != ("channel" if spec.bits == 8 else "group"):
            raise ValueError(f"the fused kernels take symmetric int8 per channel or symmetric int4 in groups, "
                             f"got {spec}")
        if spec.bits == 4 and (spec.group_size not in INT4_KERNEL_GROUPS or linear.in_features % spec.group_size
                               or linear.out_features % 16):
            raise ValueError(f"the int4 kernel needs a group size in {INT4_KERNEL_GROUPS} that divides in_features "
                             f"and out_features divisible by 16; got group size {spec.group_size} for a Linear "
                             f"{linear.in_features} -> {linear.out_features}")
        self.in_features, self.out_features, self.spec = linear.in_features, linear.out_features, spec
        self.int8_activations = int8_activations
        quantized = quantize(linear.weight, spec)
        scale = quantized.scale.to(torch.bfloat16)  # (n_blocks, 1)
        if spec.bits == 8:
            self.register_buffer("qweight", quantized.data)  # (out, in) int8
            self.register_buffer("scale", scale.reshape(-1))  # (out,)
        else:
            nibbles = unpack_int4(quantized.data).reshape(self.out_features, self.in_features).int()  # (out, in)
            self.register_buffer("qweight", torch._convert_weight_to_int4pack_for_cpu(nibbles, 2))  # (out, in/2) uint8
            scale = scale.reshape(self.out_features, -1).t()  # (in / group, out)
            self.register_buffer("scale", torch.stack([scale, torch.zeros_like(scale)], dim=-1))  # (in/group, out, 2)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        if int8_activations:  # the kernel keeps its own copy of the same integers, laid out for its dot products
            self.packed = torch.ops.quantized.linear_prepack(self._qint8_weight(quantized.scale), self.bias)

    def _qint8_weight(self, scale: torch.Tensor) -> torch.Tensor:
        """qweight and its per-row scales as the torch.qint8 tensor the dynamic kernel packs."""
        with warnings.catch_warnings():  # PyTorch marks quantized tensor types deprecated; the kernel still takes them
            warnings.simplefilter("ignore", UserWarning)
            return torch._make_per_channel_quantized_tensor(
                self.qweight, scale.reshape(-1).double(), torch.zeros(self.out_features, dtype=torch.long), 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.int8_activations:  # x quantized to int8 (one scale per call), int8 x int8 -> int32, rescaled
            y = torch.ops.quantized.linear_dynamic(x.reshape(-1, self.in_features).float(), self.packed)  # (M, out)
            return y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
        shape, x16 = x.shape, x.reshape(-1, self.in_features).to(torch.bfloat16)  # (M, in)
        if self.spec.bits == 8:
            y = torch._weight_int8pack_mm(x16, self.qweight, self.scale)  # (M, out)
        else:
            y = torch._weight_int4pack_mm_for_cpu(x16, self.qweight, self.spec.group_size, self.scale)
        y = y.to(x.dtype).reshape(*shape[:-1], self.out_features)  # (..., out)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        block = "per channel" if self.spec.bits == 8 else f"groups of {self.spec.group_size}"
        activations = "int8 (dynamic)" if self.int8_activations else "bfloat16"
        return (f"in_features={self.in_features}, out_features={self.out_features}, int{self.spec.bits} symmetric, "
                f"{block}, {activations} activations, fused CPU kernel")


def _skipped(name: str, skip: tuple[str, ...]) -> bool:
    return any(name == s or name.startswith(s + ".") for s in skip)


def quantize_model(
    model: nn.Module, bits: int = 8, group_size: int | None = None, symmetric: bool = True,
    skip: tuple[str, ...] | list[str] = (), fused: bool = False, int8_activations: bool = False,
) -> nn.Module:
    """A copy of `model` with every nn.Linear replaced by a QuantLinear; the original is left as it was.

    group_size None: one scale per output channel; a number: one scale per group of that many weights.
    skip: module names (e.g. "projector", "llm.lm_head") whose Linear layers stay in float.
    Embeddings, norms, convolutions and other parameters stay in float too.
    fused: FusedQuantLinear (PyTorch's weight-only kernels, symmetric only) instead of QuantLinear.
    int8_activations: (fused, 8 bits) activations quantized to int8 on the fly too: PyTorch's dynamic int8 kernel.
    """
    if int8_activations and not fused:
        raise ValueError("int8_activations needs fused=True: QuantLinear multiplies in float")
    names = dict(model.named_modules())
    unknown = [s for s in skip if s not in names]
    if unknown:
        raise ValueError(f"skip names {unknown} are not modules of this model; "
                         f"top-level modules: {[n for n in names if n and '.' not in n]}")
    spec = QuantSpec(bits, symmetric, "channel" if group_size is None else "group", group_size or QuantSpec.group_size)
    def layer(linear: nn.Linear, spec: QuantSpec) -> nn.Module:
        return FusedQuantLinear(linear, spec, int8_activations) if fused else QuantLinear(linear, spec)

    quantized = copy.deepcopy(model)
    for name, module in list(quantized.named_modules()):
        if isinstance(module, nn.Linear) and not _skipped(name, tuple(skip)):
            parent, _, child = name.rpartition(".")
            try:
                setattr(quantized.get_submodule(parent), child, layer(module, spec))
            except ValueError as error:
                raise ValueError(f"cannot quantize {name}: {error}") from None
    return quantized


def size_on_disk(model: nn.Module) -> int:
    """Bytes of the model's state dict written as one safetensors file (in a temporary folder, deleted afterwards)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        save_file({name: t.detach().contiguous() for name, t in model.state_dict().items()}, str(path))
        return path.stat().st_size


def agreement(reference: list[str], other: list[str]) -> float:
    """Share of positions where two lists of answers are identical (e.g. a quantized model against fp32)."""
    if len(reference) != len(other) or not reference:
        raise ValueError(f"need two non-empty lists of the same length, got {len(reference)} and {len(other)} answers")
    return sum(a == b for a, b in zip(reference, other, strict=True)) / len(reference)
