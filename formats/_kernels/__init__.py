"""numba kernels behind formats/, one module per family. Private: the public API
validates and dispatches (``from . import _kernels as K``).

- :mod:`._common`: mode and policy codes, :class:`FloatInput`, integer rounding of a
  significand (``round_right``), bit helpers.
- :mod:`.minifloat`: minifloats of any width through int64 (:class:`MinifloatParams`).
- :mod:`.minifloat_f32`: the float32 fast path of minifloats (:class:`F32Consts`).
- :mod:`.fixed`: integers and fixed point (:class:`FixedParams`, :class:`GridConsts`).
- :mod:`.table`: formats given by a table of values (Lut, BipolarInt).
- :mod:`.block`: block-scaled fake quantization (:class:`Pow2Params`).
- :mod:`.packing`: sub-byte packing.

Every kernel takes flat, contiguous arrays, plain ints/floats, and its format's
constants as one documented NamedTuple. Floating-point inputs arrive as their IEEE bit
patterns (an unsigned-integer view) with the input's :class:`FloatInput` layout, so
float16, float32 and float64 share one kernel and rounding is done on integers: exact,
branch-light, and independent of the FPU's mode. No kernel uses fastmath; the JIT
options live in ``formats/_jit.py``.
"""

from ._common import (
    DOWN,
    OERR,
    OINF,
    ONAN,
    RNA,
    RNE,
    RTZ,
    SAT,
    STOCH,
    UP,
    WRAP,
    FloatInput,
)
from .block import (
    NO_GRID,
    NO_POW2,
    Pow2Params,
    block_amax,
    block_amax_bits,
    block_divide_odd,
    block_multiply,
    block_quantize_f32,
    pow2_scales,
    scale_finish,
    scale_targets_odd,
)
from .fixed import FixedParams, GridConsts, fixed_quantize_fast, int_encode, int_quantize
from .minifloat import MinifloatParams, mf_decode, mf_encode
from .minifloat_f32 import (
    NO_F32,
    CodeConsts,
    F32Consts,
    code_consts,
    encode_f32,
    fast_consts,
    quantize_f32,
)
from .packing import pack_bits, unpack_bits
from .table import sorted_encode, table_decode, table_nearest

__all__ = [
    "DOWN", "NO_F32", "NO_GRID", "NO_POW2", "OERR", "OINF", "ONAN", "RNA", "RNE", "RTZ",
    "SAT", "STOCH", "UP", "WRAP", "CodeConsts", "F32Consts", "FixedParams", "FloatInput",
    "GridConsts", "MinifloatParams", "Pow2Params", "block_amax", "block_amax_bits",
    "block_divide_odd", "block_multiply", "block_quantize_f32", "code_consts", "encode_f32",
    "fast_consts", "fixed_quantize_fast", "int_encode", "int_quantize", "mf_decode",
    "mf_encode", "pack_bits", "pow2_scales", "quantize_f32", "scale_finish",
    "scale_targets_odd", "sorted_encode", "table_decode", "table_nearest", "unpack_bits",
]
