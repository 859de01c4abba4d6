"""numfab.simulator: bit-true GEMMs with modelled accumulators, and the seed hardware.

:func:`gemm` multiplies quantized operands (scalar or block-scaled formats) with an
:class:`Accumulator` (format, rounding, order, adder tree, chunked promotion, product
rounding) and returns exactly what that datapath computes.
"""

from .accumulator import Accumulator, Order
from .gemm import Operand, gemm, quantize_operand

__all__ = ["Accumulator", "Operand", "Order", "gemm", "quantize_operand"]
