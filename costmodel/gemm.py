"""A GEMM on an array of PEs: cycles, throughput, area, bytes moved and energy."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from formats import BlockScaled, Integer, Minifloat, parse

from .energy import DRAM_PJ_PER_BYTE, SRAM_PJ_PER_BYTE, energy_per_op
from .estimate import estimate

__all__ = ["GemmCost", "gemm_cost", "operand_bits", "pe_for"]


@dataclasses.dataclass(frozen=True)
class GemmCost:
    """``M x K @ K x N`` on a ``rows x cols`` output-stationary array of ``pe``.

    Each PE owns one output and takes ``macs_per_cycle`` products per cycle; tiles of
    ``rows x cols`` outputs stream back to back (``cycles = tiles * ceil(K / macs) +
    rows + cols``, the fill once). Off-chip bytes: each operand read once (elements,
    block scales, tensor scale) and the output written once in the accumulator's format;
    on-chip bytes: A re-read for every column tile, B for every row tile, from SRAM.
    Energy: compute = PE energy per step x steps, on-chip/off-chip = bytes x pJ/byte
    (Horowitz 45 nm, :mod:`costmodel.energy`).
    """

    pe: str
    pe_options: dict[str, Any]
    target: str
    pes: int
    macs_per_cycle: int
    cycles: int
    seconds: float
    macs_per_second: float
    area: float
    area_unit: str
    bits: dict[str, int]
    bytes: dict[str, float]
    energy_pj: dict[str, float]

    @property
    def pj_per_mac(self) -> float:
        return self.energy_pj["total"] / max(1, self.macs)

    @property
    def macs(self) -> int:
        return int(self.macs_per_second * self.seconds + 0.5)


def operand_bits(fmt: Any, rows: int, k: int) -> int:
    """Exact stored bits of a ``rows x k`` operand with blocks along K: elements, one
    scale (and zero point) per block (a partial block at the end of a row still has
    one), and a tensor scale once."""
    f = parse(fmt)
    if isinstance(f, BlockScaled):
        if not isinstance(f.block_size, int):
            raise ValueError(f"{f}: gemm_cost takes 1-D blocks along K, not tiles")
        blocks = rows * math.ceil(k / f.block_size)
        zp = f.element.bits if f.zero_point else 0
        ts = f.tensor_scale.bits if f.tensor_scale is not None else 0
        return rows * k * f.element.bits + blocks * (f.scale.bits + zp) + ts
    return rows * k * f.bits


def pe_for(a_format: Any, b_format: Any, accumulator: Any, *, k: int = 8,
           lanes: int = 8) -> tuple[str, dict[str, Any], int]:
    """The PE that computes ``a x b`` into ``accumulator``: (kind, options, MACs/cycle)."""
    fa, fb = parse(a_format), parse(b_format)
    acc = str(accumulator)
    facc = parse(acc)
    if isinstance(fa, BlockScaled) and isinstance(fb, BlockScaled):
        bs = fa.block_size
        kk = math.gcd(int(k), int(bs))  # type: ignore[arg-type]
        return "BlockDot", {"a": fa, "b": fb, "acc": acc, "k": kk}, kk
    if isinstance(fa, Integer) and isinstance(fb, BlockScaled) \
            and isinstance(fb.element, Integer):
        gs = int(fb.block_size)  # type: ignore[arg-type]
        ln = math.gcd(int(lanes), gs)
        return "ShiftAddPe", {"x": fa, "w": fb, "acc": acc, "lanes": ln}, ln
    if isinstance(fa, Minifloat) and isinstance(fb, Minifloat) and isinstance(facc, Minifloat):
        return "FloatMac", {"a": fa, "b": fb, "acc": acc}, 1
    if isinstance(fa, Integer) and isinstance(fb, Integer) and isinstance(facc, Integer):
        return "IntMac", {"a": fa, "b": fb, "acc_bits": facc.bits}, 1
    raise ValueError(f"no PE model for {fa} x {fb} into {acc}: minifloat x minifloat -> "
                     "float (FloatMac), int x int -> int<n> (IntMac), MX/NVFP4/BFP blocks "
                     "(BlockDot) or int x grouped int (ShiftAddPe)")


def gemm_cost(M: int, N: int, K: int, a_format: Any, b_format: Any,
              accumulator: Any = "float32", *, array: tuple[int, int] = (16, 16),
              target: str = "xilinx", freq: float = 250e6, k: int = 8,
              lanes: int = 8) -> GemmCost:
    """Cost of an ``M x K`` by ``K x N`` GEMM on a ``rows x cols`` array at ``freq`` Hz.
    Block formats run on BlockDot PEs taking ``k`` element pairs per cycle; int x
    grouped-int on ShiftAddPe with ``lanes``; scalar formats on FloatMac / IntMac."""
    for name, v in (("M", M), ("N", N), ("K", K)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, not {v!r}")
    if (not isinstance(array, (tuple, list)) or len(array) != 2
            or not all(isinstance(x, int) and x >= 1 for x in array)):
        raise ValueError(f"array must be (rows, cols) of positive ints, not {array!r}")
    if not freq > 0:
        raise ValueError(f"freq must be positive (Hz), not {freq!r}")
    kind, opts, mpc = pe_for(a_format, b_format, accumulator, k=k, lanes=lanes)
    rows, cols = array
    est = estimate(kind, target=target, **opts)
    tiles = math.ceil(M / rows) * math.ceil(N / cols)
    cycles = tiles * math.ceil(K / mpc) + rows + cols
    seconds = cycles / freq
    macs = M * N * K
    facc = parse(str(accumulator))
    bits = {"a": operand_bits(a_format, M, K), "b": operand_bits(b_format, N, K),
            "c": M * N * facc.bits}
    offchip = (bits["a"] + bits["b"] + bits["c"]) / 8
    onchip = (bits["a"] * math.ceil(N / cols) + bits["b"] * math.ceil(M / rows)) / 8
    steps = M * N * math.ceil(K / mpc)
    e_op = energy_per_op(kind, **opts)
    energy = {"compute": e_op * steps, "onchip": onchip * SRAM_PJ_PER_BYTE,
              "offchip": offchip * DRAM_PJ_PER_BYTE}
    energy["total"] = sum(energy.values())
    return GemmCost(
        pe=kind, pe_options={k_: str(v) for k_, v in opts.items()}, target=target,
        pes=rows * cols, macs_per_cycle=mpc, cycles=cycles, seconds=seconds,
        macs_per_second=macs / seconds, area=est.primary * rows * cols, area_unit=est.unit,
        bits=bits, bytes={"a": bits["a"] / 8, "b": bits["b"] / 8, "c": bits["c"] / 8,
                          "offchip": offchip, "onchip": onchip},
        energy_pj=energy)
