"""numfab.simulator: bit-true GEMMs with modelled accumulators, and the seed hardware.

:func:`gemm` multiplies quantized operands (scalar or block-scaled formats) with an
:class:`Accumulator` (format, rounding, order, adder tree, chunked promotion, product
rounding) and returns exactly what that datapath computes; a :class:`Datapath` holds the
operand formats, the accumulator and the PE geometry as one value.
"""

from .accumulator import Accumulator, Order
from .datapath import Datapath
from .gemm import Codes, Operand, gemm, quantize_operand
from .hardware import HwResult, bipolar_gemm, grouped_gemm, llm_int8_gemm, lut_gemm

__all__ = [
    "Accumulator",
    "Codes",
    "Datapath",
    "HwResult",
    "Operand",
    "Order",
    "bipolar_gemm",
    "gemm",
    "grouped_gemm",
    "llm_int8_gemm",
    "lut_gemm",
    "quantize_operand",
]
