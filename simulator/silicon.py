"""Accumulator models validated against silicon, by name (:meth:`Accumulator.named`).

Each was inferred on an NVIDIA H100 80GB HBM3 (torch 2.11+cu130, Triton 3.6) by
:func:`simulator.probe.probe_accumulator` and refined where the probes could not see
(the carry of a step beyond the window: the FP8 register keeps 14 significant bits), then
compared with the chip on 10,485,760 dot products per call
(``benchmarks/silicon_probe.py --named``; figures in the README). CI checks every model
against the chip's recorded answers (``tests/data/silicon/h100_fixtures.npz``).

What they say, in the terms of :class:`~simulator.Accumulator` (order ``fused``):

- FP8 (E4M3 x E4M3, E4M3 x E5M2), wgmma: 32 products per step, aligned with the
  accumulator to the largest exponent, a product's exponent being its operands'
  exponents added (it aligns before it normalizes); 13 bits kept below it, the rest
  truncated (toward zero); the step's sum truncated into a register of 14 significant
  bits (``e8m13``). ``torch._scaled_mm`` (cuBLAS, ``use_fast_accum=False``) adds that
  register into float32 every 128 products; with ``use_fast_accum=True``, and in a
  Triton ``tl.dot`` loop, it is never promoted.
- bfloat16 and float16 (``tl.dot``, and cuBLAS ``torch.matmul`` in those dtypes at the
  shapes checked): 16 products per step, 25 bits kept below the largest exponent
  (truncated), the sum truncated into float32; a sum beyond float32's range is +-Inf.
  ``torch.matmul`` rounds the float32 result once to its output dtype.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CALLS", "NAMED", "named"]

_FP8 = "e8m13,toward_zero,fused32w13,align_from=exponents"
_HALF = "float32,toward_zero,fused16w25,align_from=exponents,inf_on_overflow"

#: name -> (accumulator text, what it models)
NAMED: dict[str, tuple[str, str]] = {
    "h100_fp8_scaled_mm": (_FP8 + ",chunk128->float32",
                           "torch._scaled_mm on FP8 operands (cuBLAS), float32 or bfloat16 "
                           "output, use_fast_accum=False"),
    "h100_fp8_fast_accum": (_FP8, "torch._scaled_mm on FP8 operands, use_fast_accum=True"),
    "h100_fp8_triton": (_FP8, "Triton tl.dot on FP8 operands, float32 accumulator"),
    "h100_bf16_triton": (_HALF, "Triton tl.dot on bfloat16 operands, float32 accumulator"),
    "h100_fp16_triton": (_HALF, "Triton tl.dot on float16 operands, float32 accumulator"),
    "h100_bf16_matmul": (_HALF, "torch.matmul in bfloat16 (cuBLAS; output rounded to "
                                "bfloat16)"),
    "h100_fp16_matmul": (_HALF, "torch.matmul in float16 (cuBLAS; output rounded to "
                                "float16)"),
}


def named(name: str) -> Any:
    """The :class:`~simulator.Accumulator` named ``name`` (:data:`NAMED`)."""
    from .accumulator import Accumulator

    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    if name not in NAMED:
        import difflib

        near = difflib.get_close_matches(name, NAMED, n=1)
        raise ValueError(f"unknown accumulator model {name!r}"
                         + (f" (did you mean {near[0]!r}?)" if near else "")
                         + f"; named models: {', '.join(NAMED)}")
    return Accumulator.parse(NAMED[name][0])


#: the calls recorded on the H100 (tests/data/silicon/h100_fixtures.npz: per call ``.a``,
#: ``.b`` operand codes, ``.out`` the chip's float64 answers): name -> (a format, b format,
#: output format, named model)
CALLS: dict[str, tuple[str, str, str, str]] = {
    "scaled_mm_e4m3_e4m3_f32": ("float8_e4m3fn", "float8_e4m3fn", "float32",
                                "h100_fp8_scaled_mm"),
    "scaled_mm_e4m3_e5m2_f32": ("float8_e4m3fn", "float8_e5m2", "float32",
                                "h100_fp8_scaled_mm"),
    "scaled_mm_e4m3_e4m3_bf16": ("float8_e4m3fn", "float8_e4m3fn", "bfloat16",
                                 "h100_fp8_scaled_mm"),
    "scaled_mm_e4m3_e5m2_bf16": ("float8_e4m3fn", "float8_e5m2", "bfloat16",
                                 "h100_fp8_scaled_mm"),
    "scaled_mm_fast_e4m3_e4m3_f32": ("float8_e4m3fn", "float8_e4m3fn", "float32",
                                     "h100_fp8_fast_accum"),
    "triton_e4m3_e4m3_f32": ("float8_e4m3fn", "float8_e4m3fn", "float32", "h100_fp8_triton"),
    "triton_e4m3_e5m2_f32": ("float8_e4m3fn", "float8_e5m2", "float32", "h100_fp8_triton"),
    "triton_bf16_f32": ("bfloat16", "bfloat16", "float32", "h100_bf16_triton"),
    "triton_f16_f32": ("float16", "float16", "float32", "h100_fp16_triton"),
    "matmul_bf16": ("bfloat16", "bfloat16", "bfloat16", "h100_bf16_matmul"),
    "matmul_f16": ("float16", "float16", "float16", "h100_fp16_matmul"),
}
