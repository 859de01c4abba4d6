"""A GEMM on an array of PEs: cycles, throughput, area, bytes moved and energy."""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from typing import Any, cast

from formats import BlockScaled, FixedBase, Integer, Minifloat, parse

from .energy import DRAM_PJ_PER_BYTE, SRAM_PJ_PER_BYTE, energy_per_op
from .estimate import estimate
from .features import Described, describe

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


def _format(value: Any, parameter: str) -> Any:
    """``value`` parsed as a format, errors naming ``parameter``; block formats must block
    along K (1-D), as the GEMM's PEs and byte counts assume."""
    f = parse(value, parameter=parameter)
    if isinstance(f, BlockScaled) and not isinstance(f.block_size, int):
        raise ValueError(f"{parameter} must have 1-D blocks along K for gemm_cost, not tiles "
                         f"{'x'.join(map(str, f.block_size))} ({f})")
    return f


def _count(value: Any, parameter: str) -> int:
    """A positive integer count (Python or numpy int; not bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{parameter} must be a positive int, not {type(value).__name__} "
                        f"{value!r}")
    if value < 1:
        raise ValueError(f"{parameter} must be a positive int, not {value!r}")
    return int(value)


def operand_bits(fmt: Any, rows: int, k: int) -> int:
    """Exact stored bits of a ``rows x k`` operand with blocks along K:
    ``fmt.storage_bits((rows, k))`` blocked along its last axis (elements, one scale
    and zero point per block, a partial block at the end of a row included, and a
    tensor scale once at its own format's width)."""
    f = _format(fmt, "fmt")
    rows, k = _count(rows, "rows"), _count(k, "k")
    if isinstance(f, BlockScaled) and f.axis != -1:
        f = dataclasses.replace(f, axis=-1)  # K is the last axis of (rows, k)
    return int(f.storage_bits((rows, k)))


def _pe_for(a_format: Any, b_format: Any, accumulator: Any, k: int,
            lanes: int) -> tuple[Any, dict[str, Any], Described, int]:
    """(what names the PE to :func:`costmodel.estimate`: its kind or its datapath; its
    rtl.build options; the PE described by rtl; MACs per cycle)."""
    from simulator import Accumulator, Datapath

    if isinstance(a_format, Datapath) or isinstance(accumulator, Accumulator) or (
            isinstance(accumulator, str) and "," in accumulator):
        return _pe_for_datapath(a_format if isinstance(a_format, Datapath)
                                else Datapath(a_format, b_format, accumulator))
    fa, fb = _format(a_format, "a_format"), _format(b_format, "b_format")
    facc = _format(accumulator, "accumulator")
    k, lanes = _count(k, "k"), _count(lanes, "lanes")
    if isinstance(fa, BlockScaled) and isinstance(fb, BlockScaled):
        kk = math.gcd(k, cast(int, fa.block_size))
        kind, opts, mpc = "BlockDot", {"a": fa, "b": fb, "acc": facc, "k": kk}, kk
    elif isinstance(fa, Integer) and isinstance(fb, BlockScaled) \
            and isinstance(fb.element, Integer):
        ln = math.gcd(lanes, cast(int, fb.block_size))
        kind, opts, mpc = "ShiftAddPe", {"x": fa, "w": fb, "acc": facc, "lanes": ln}, ln
    elif isinstance(fa, (Minifloat, FixedBase)) and isinstance(fb, (Minifloat, FixedBase)) \
            and isinstance(facc, Minifloat):
        kind, opts, mpc = "FloatMac", {"a": fa, "b": fb, "acc": facc}, 1
    elif isinstance(fa, Integer) and isinstance(fb, Integer) and isinstance(facc, Integer):
        kind, opts, mpc = "IntMac", {"a": fa, "b": fb, "acc_bits": facc.bits}, 1
    else:
        raise ValueError(f"no PE model for {fa} x {fb} into {facc}: minifloat, integer or "
                         "fixed-point operands -> float (FloatMac), int x int -> int<n> "
                         "(IntMac), MX/NVFP4/BFP blocks (BlockDot) or int x grouped int "
                         "(ShiftAddPe)")
    try:
        pe = describe(kind, **opts)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"a_format={fa}, b_format={fb}, accumulator={facc} run on {kind}, "
                        f"which rtl cannot build for them: {exc}") from None
    return kind, opts, pe, mpc


@functools.lru_cache(maxsize=1024)
def _pe_for_datapath(dp: Any) -> tuple[Any, dict[str, Any], Described, int]:
    """The PE of a :class:`simulator.Datapath`: exactly its arithmetic (k products per
    cycle for BlockDot, the accumulator's rounding and overflow), or rtl's error naming
    what no PE builds."""
    from rtl.datapath import pe_options

    kind, opts = pe_options(dp)
    if dp.terms is not None:
        raise ValueError(f"gemm_cost runs a GEMM on accumulating PEs; the datapath {dp} is "
                         f"a {kind} without a running sum (terms={dp.terms})")
    return dp, opts, describe(dp), dp.k


@functools.lru_cache(maxsize=1024)
def _options_text(options: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, str], ...]:
    """rtl.build options as text (format names, enum values): GemmCost.pe_options."""
    return tuple((k, str(getattr(v, "value", v))) for k, v in options)


def pe_for(a_format: Any, b_format: Any, accumulator: Any, *, k: int = 8,
           lanes: int = 8) -> tuple[str, dict[str, Any], int]:
    """The PE that computes ``a x b`` into ``accumulator``: (kind, rtl.build options,
    MACs/cycle). Block formats: a BlockDot taking ``gcd(k, block size)`` element pairs
    per cycle; int x grouped int: a ShiftAddPe with ``gcd(lanes, group size)`` lanes.
    rtl validates the PE (:func:`rtl.describe`), so every returned choice can be built."""
    _, opts, pe, mpc = _pe_for(a_format, b_format, accumulator, k, lanes)
    return pe.kind, opts, mpc


def gemm_cost(M: int, N: int, K: int, a_format: Any, b_format: Any = None,
              accumulator: Any = "float32", *, array: tuple[int, int] = (16, 16),
              target: str = "xilinx", freq: float = 250e6, k: int = 8,
              lanes: int = 8) -> GemmCost:
    """Cost of an ``M x K`` by ``K x N`` GEMM on a ``rows x cols`` array at ``freq`` Hz.

    Given a :class:`simulator.Datapath` (in place of ``a_format``) or an
    :class:`simulator.Accumulator` (or its text), the PE is the one that computes that
    datapath (``rtl.build(datapath)``: BlockDot summing the accumulator's tree width per
    cycle, FusedDot its fused step of ``tree_width`` products per cycle (``order='fused'``),
    ShiftAddPe its ``k`` lanes, their rounding and overflow, the promotion adder
    and wide register of chunked accumulation, product and tree-sum rounders; the output
    written in the accumulator's format, chunked: the wide one), and a datapath no PE
    builds (pairwise order, stochastic rounding, ...) or one without a running sum
    (``terms``: a multiplier, converter or fixed-length dot product) is a ValueError
    naming what is missing.
    The shorthand (formats and an accumulator format name): block formats run on
    BlockDot PEs taking ``gcd(k, block size)`` element pairs per cycle; int x grouped-int
    on ShiftAddPe with ``gcd(lanes, group size)`` lanes; scalar formats on FloatMac /
    IntMac (:func:`pe_for`).

    Raises
    ------
    TypeError
        A count, ``array`` entry or ``freq`` of the wrong kind, or a format given as
        neither a name nor a format.
    ValueError
        Counts below 1, ``freq`` not finite and positive, 2-D block tiles, format
        combinations without a PE, PEs rtl cannot build, unknown targets.
    """
    M, N, K = _count(M, "M"), _count(N, "N"), _count(K, "K")
    if not isinstance(array, (tuple, list)) or len(array) != 2 or not all(
            isinstance(x, numbers.Integral) and not isinstance(x, bool) for x in array):
        raise TypeError(f"array must be (rows, cols) of positive ints, not {array!r}")
    if not all(x >= 1 for x in array):
        raise ValueError(f"array must be (rows, cols) of positive ints, not {array!r}")
    rows, cols = int(array[0]), int(array[1])
    if isinstance(freq, bool) or not isinstance(freq, numbers.Real):
        raise TypeError(f"freq must be a positive finite number (Hz), not "
                        f"{type(freq).__name__} {freq!r}")
    if not (math.isfinite(freq) and freq > 0):
        raise ValueError(f"freq must be a positive finite number (Hz), not {freq!r}")
    freq = float(freq)
    from simulator import Datapath

    if isinstance(a_format, Datapath):
        if b_format is not None:
            raise ValueError("give either a datapath or a_format and b_format, not both")
        name, opts, pe, mpc = _pe_for_datapath(a_format)
        a_format, b_format = a_format.a, a_format.b
    elif b_format is None:
        raise TypeError("gemm_cost needs b_format (or a simulator.Datapath in place of "
                        "a_format)")
    else:
        name, opts, pe, mpc = _pe_for(a_format, b_format, accumulator, k, lanes)
    kind = pe.kind
    # the PE as named (a datapath, or a kind with options): priced from what describe kept
    est = estimate(name, target=target, **(opts if isinstance(name, str) else {}))
    acc = pe.datapath.accumulator
    # the output leaves in the accumulator's format (chunked: the wide register's)
    acc_fmt = acc.chunk_format if acc.chunk is not None else acc.format
    tiles = math.ceil(M / rows) * math.ceil(N / cols)
    cycles = tiles * math.ceil(K / mpc) + rows + cols
    seconds = cycles / freq
    macs = M * N * K
    bits = {"a": operand_bits(a_format, M, K), "b": operand_bits(b_format, N, K),
            "c": M * N * acc_fmt.bits}
    offchip = (bits["a"] + bits["b"] + bits["c"]) / 8
    onchip = (bits["a"] * math.ceil(N / cols) + bits["b"] * math.ceil(M / rows)) / 8
    steps = M * N * math.ceil(K / mpc)
    e_op = energy_per_op(name, **(opts if isinstance(name, str) else {}))
    energy = {"compute": e_op * steps, "onchip": onchip * SRAM_PJ_PER_BYTE,
              "offchip": offchip * DRAM_PJ_PER_BYTE}
    energy["total"] = sum(energy.values())
    return GemmCost(
        pe=kind, pe_options=dict(_options_text(tuple(opts.items()))),
        target=target,
        pes=rows * cols, macs_per_cycle=mpc, cycles=cycles, seconds=seconds,
        macs_per_second=macs / seconds, area=est.primary * rows * cols, area_unit=est.unit,
        bits=bits, bytes={"a": bits["a"] / 8, "b": bits["b"] / 8, "c": bits["c"] / 8,
                          "offchip": offchip, "onchip": onchip},
        energy_pj=energy)
