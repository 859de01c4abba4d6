"""Processing elements: Amaranth ``wiring.Component``s parameterised by formats/ objects.

Interfaces (every component has ``latency``, ``kind`` and ``formats`` attributes):

* combinational units (:class:`FloatMul`, :class:`Quantizer`): operands in, result out;
  ``stages`` adds output registers (a clock domain ``sync``), ``latency = stages`` clock
  edges from operands to result.
* accumulating units (:class:`IntMac`, :class:`FloatMac`, :class:`BlockDot`,
  :class:`FusedDot`, :class:`ShiftAddPe`): fixed-latency enable. On a clock edge with
  ``en`` the operands are taken; ``clear`` with ``en`` starts a new sum from +0
  (``clear`` alone empties the accumulator). ``acc`` shows the sum ``latency`` edges
  after the operands were applied (``latency = 1 + stages``; ``stages=1`` registers the
  products first).
* bit-serial units (:class:`BipolarPe`, :class:`LutPe`): ``start`` with the operands
  begins a computation; ``busy`` while it runs; ``done`` and ``result`` valid
  ``latency`` edges after the start edge (``result`` holds until the next start).

Codes enter and leave in the formats' own bit layouts (``rtl._hw.layout_of``); arrays of
elements are ``data.ArrayLayout``s, element 0 in the low bits.
"""

from __future__ import annotations

from ._common import _Pe
from .block import BlockDot, ProductGrid, product_grid
from .fused import FusedDot
from .mac import FloatMac, FloatMul, IntMac
from .quantizer import Quantizer
from .seed import BipolarPe, LutPe, ShiftAddPe

__all__ = ["BipolarPe", "BlockDot", "FloatMac", "FloatMul", "FusedDot", "IntMac", "LutPe",
           "Quantizer", "ShiftAddPe", "PE_KINDS", "ProductGrid", "product_grid"]

PE_KINDS: dict[str, type[_Pe]] = {c.kind: c for c in (IntMac, FloatMul, FloatMac, BlockDot,
                                                     FusedDot, Quantizer, BipolarPe, LutPe,
                                                     ShiftAddPe)}
