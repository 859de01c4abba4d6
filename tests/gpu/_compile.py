"""Compile formats/_gpu/block.py's kernels for an H100 (sm_90) without a GPU, and print
what their PTX holds: run as ``python -m tests.gpu._compile [all]`` with
TRITON_INTERPRET=0 (tests/gpu/test_block_gpu.py does). Each line: the case, then the
floating-point instructions that matter for bit-identity (divisions, fused multiply-adds,
flush-to-zero variants) and whether the loads are vectorized. The kernels are compiled
with the options they are launched with (``enable_fp_fusion=False``: ptxas fuses no
product and sum either, which the PTX cannot show)."""

from __future__ import annotations

import json
import re
import sys

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

import formats
from formats._gpu import block as B

#: (format, scale source, division kind, bfloat16 input, block size or None)
CASES = [("mxfp4", 1, 0, False, None), ("nvfp4", 5, 3, True, None),
         ("mxint8", 0, 1, False, 8192)]
MORE = [("mxfp8_e4m3", 3, 0, True, None), ("block<ue4m3;float8_e8m0fnu;16;floor>", 4, 0, False,
                                            None),
        ("block<float16;bfloat16;32;nearest>", 5, 2, False, None),
        ("block<float8_e4m3fnuz;float8_e8m0fnu;32;floor>", 2, 0, False, None)]
#: aligned pointers and sizes divisible by 16, as Triton specializes torch's allocations
#: and such sizes at launch
ALIGNED = {(i,): [["tt.divisibility", 16]] for i in (0, 1, 2, 4)}


def _ops(ptx: str) -> dict[str, object]:
    return {"fp": sorted(set(re.findall(r"\b((?:fma|div|rcp|sqrt)\.[\w.]+)", ptx))),
            "ftz": sorted(set(re.findall(r"\b\w+(?:\.\w+)*\.ftz\b", ptx))),
            "vector_loads": bool(re.search(r"ld\.global(?:\.\w+)*\.v[24]", ptx))}


def _compile(fn: object, sig: dict[str, str], consts: dict[str, object]) -> str:
    sig = {**sig, **{k: "constexpr" for k in consts}}
    c = triton.compile(ASTSource(fn, signature=sig, constexprs=consts, attrs=ALIGNED),
                       target=GPUTarget("cuda", 90, 32),
                       options={"num_warps": B.WARPS, **B._LAUNCH})
    return str(c.asm["ptx"])


def main() -> None:
    for name, src, div, in16, bsz in CASES + (MORE if "all" in sys.argv else []):
        fmt = formats.parse(name)
        bs = bsz or fmt.block_numel
        chunk = min(triton.next_power_of_2(bs), B._MAX_CHUNK)
        consts = dict(B._fused_constants(fmt), BS=bs, ROWS=max(1, B.TILE // chunk),
                      CHUNK=chunk, IN16=in16, SRC=src, DIV=div,
                      TS=0 if fmt.tensor_scale is None else 1 if src == 5 else 2)
        ts_ptr = "*i32" if consts["TS"] == 1 else "*fp64"
        pt = "*i16" if in16 else "*i32"
        ptx = _compile(B._fused_kernel, {"x_ptr": pt, "out_ptr": pt, "scale_ptr": "*fp64",
                                         "ts_ptr": ts_ptr, "nrows": "i32"}, consts)
        print(json.dumps({"case": f"{name} src={src} div={div} in16={in16}", **_ops(ptx)}))
    for per in (False, True):
        consts = dict(BS=1024, ROWS=4, CHUNK=1024, IN16=False, PER_PROGRAM=per)
        ptx = _compile(B._amax_kernel, {"x_ptr": "*i32", "amax_ptr": "*i32",
                                        "bad_ptr": "*i8", "nrows": "i32", "ntotal": "i64"},
                       consts)
        print(json.dumps({"case": f"amax per_program={per}", **_ops(ptx)}))


if __name__ == "__main__":
    main()
