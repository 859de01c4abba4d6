"""Component sizes of each processing element, in closed form from its formats.

The sizes follow the datapaths of ``rtl/`` (see ``rtl/_hw.py``): mantissa or integer
multipliers count ``wa * wb`` bit-products, adders / subtractors / comparators / negators
their width, barrel shifters ``width * stages`` (stages = bits of the shift amount),
leading-zero counters ``width * log2(width)``, 2:1 multiplexing its width, registers
their bits, table storage its bits. No component is elaborated: :func:`features` takes
well under a millisecond.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from formats import BipolarInt, BlockScaled, Integer, Minifloat, parse
from formats.integer import _Fixed

__all__ = ["FEATURES", "features", "features_of"]

#: the features, in the model's column order
FEATURES = ("mult", "add", "shift", "lzc", "mux", "ff", "table", "const")


def _clog2(n: int) -> int:
    return max(1, math.ceil(math.log2(max(n, 2))))


class _F(dict):
    def __init__(self) -> None:
        super().__init__({k: 0.0 for k in FEATURES})
        self["const"] = 1.0

    def add(self, **kw: float) -> None:
        for k, v in kw.items():
            self[k] += float(v)


@functools.lru_cache(maxsize=4096)
def _parse(name: Any) -> Any:
    return parse(name)


def _sig(f: Any) -> tuple[int, int, int]:
    """(significand bits, exponent-of-LSB range width, total code bits)."""
    if isinstance(f, Minifloat):
        lo = (1 if f.subnormals else 0) - f.bias - f.man_bits
        hi = (1 << f.exp_bits) - 1 - f.bias - f.man_bits
        return f.man_bits + 1, hi - lo, f.bits
    if isinstance(f, (_Fixed, BipolarInt)):
        return f.bits, 0, f.bits
    raise ValueError(f"no component model for {f} ({type(f).__name__})")


def _ew(f: Any) -> int:
    return f.exp_bits + 2


def _round_to(F: _F, out: Minifloat, W: int, ew: int) -> None:
    man = out.man_bits
    XW = W + man + 1
    F.add(lzc=W * _clog2(W), shift=2 * XW * _clog2(XW + 2),
          add=3 * ew + 2 * (ew + man + 2), mux=4 * out.bits + ew)


def _add_terms(F: _F, wx: int, wy: int, p_acc: int, ew: int) -> int:
    G = max(wx, wy, p_acc) + 3
    F.add(lzc=wx * _clog2(wx) + wy * _clog2(wy), shift=2 * G * _clog2(G) + 2 * G * _clog2(G + 2),
          add=(G + 3) + (G + 2) + 3 * ew, mux=2 * G + 2 * ew + G)
    return G + 2


def _float_out(name: Any, parameter: str) -> Minifloat:
    f = _parse(name)
    if not isinstance(f, Minifloat):
        raise ValueError(f"{parameter} must be a minifloat for the component model, not {f}")
    return f


def features(pe: str, **p: Any) -> dict[str, float]:
    """Component sizes of the PE ``pe`` with the options of ``rtl.build``."""
    kind = pe.lower()
    F = _F()
    if kind == "floatmul":
        a, b = _float_out(p.get("a", "e4m3fn"), "a"), _float_out(p.get("b", "e4m3fn"), "b")
        pa, _, _ = _sig(a)
        pb, _, _ = _sig(b)
        out = p.get("out")
        if out is None:
            from rtl._hw import exact_product_format
            fo = exact_product_format(a, b)
        else:
            fo = _float_out(out, "out")
        ew = max(_ew(a), _ew(b)) + 1
        F.add(mult=pa * pb, add=ew)
        _round_to(F, fo, pa + pb, ew)
        F.add(ff=p.get("stages", 0) * fo.bits)
    elif kind == "floatmac":
        a, b = _float_out(p.get("a", "e4m3fn"), "a"), _float_out(p.get("b", "e4m3fn"), "b")
        acc = _float_out(p.get("acc", "float32"), "acc")
        pa, pb, pc = a.man_bits + 1, b.man_bits + 1, acc.man_bits + 1
        ew = max(_ew(a) + _ew(b), _ew(acc)) + 1
        F.add(mult=pa * pb, add=ew)
        W = _add_terms(F, pa + pb, pc, pc, ew)
        _round_to(F, acc, W, ew)
        F.add(ff=acc.bits + p.get("stages", 0) * (pa + pb + ew + 3))
    elif kind == "intmac":
        a, b = _parse(p.get("a", "int8")), _parse(p.get("b", "int8"))
        n = int(p.get("acc_bits", 32))
        F.add(mult=a.bits * b.bits, add=n + 1, ff=n + p.get("stages", 0) * (a.bits + b.bits))
        if p.get("overflow", "wrap") == "saturate":
            F.add(add=2 * n, mux=n)
    elif kind == "blockdot":
        fa = _parse(p.get("a", "mxfp8_e4m3"))
        fb = _parse(p.get("b") or fa)
        if not isinstance(fa, BlockScaled) or not isinstance(fb, BlockScaled):
            raise ValueError("BlockDot needs block formats")
        acc = _float_out(p.get("acc", "float32"), "acc")
        k = int(p.get("k") or fa.block_size)  # type: ignore[arg-type]
        pa, sa, _ = _sig(fa.element)
        pb, sb, _ = _sig(fb.element)
        width = pa + pb + sa + sb + 1
        F.add(mult=k * pa * pb, shift=k * width * _clog2(sa + sb + 1) if sa + sb else 0,
              add=k * width)
        tree = width + _clog2(k)
        F.add(add=(k - 1) * tree + tree)
        psa, _, _ = _sig(fa.scale)
        psb, _, _ = _sig(fb.scale)
        ws = tree + psa + psb
        F.add(mult=tree * psa + (tree + psa) * psb)
        ew = max(_ew(fa.scale) + _ew(fb.scale) + 2, _ew(acc)) + 1
        W = _add_terms(F, ws, acc.man_bits + 1, acc.man_bits + 1, ew)
        _round_to(F, acc, W, ew)
        F.add(ff=acc.bits + p.get("stages", 0) * (ws + ew + 3))
    elif kind == "quantizer":
        fi, fo = _parse(p.get("a", "float32")), _parse(p.get("out", "e4m3fn"))
        pi, _, _ = _sig(fi)
        ew = (fi.exp_bits + 2) if isinstance(fi, Minifloat) else 4
        if isinstance(fo, Minifloat):
            _round_to(F, fo, pi, ew)
        else:
            F.add(shift=2 * (pi + fo.bits + 2) * _clog2(pi + fo.bits), add=2 * (pi + fo.bits)
                  + 3 * fo.bits, mux=3 * fo.bits)
        F.add(ff=p.get("stages", 0) * fo.bits)
    elif kind == "bipolarpe":
        a, b = _parse(p.get("a", "bipolar4")), _parse(p.get("b", "bipolar4"))
        k = int(p.get("k", 16))
        na, nb = a.bits, b.bits
        rb = (k * (2**na - 1) * (2**nb - 1)).bit_length() + 3
        # plane-select muxes, XOR + popcount (~k full adders), the shifted dot into the
        # accumulator; two's-complement operands add a tree summing their bipolar values
        F.add(ff=k * (na + nb) + rb + _clog2(na) + _clog2(nb) + 2,
              mux=k * (na + nb), add=k + rb + _clog2(k) + 4,
              shift=(_clog2(k) + 2) * _clog2(na + nb))
        for f in (a, b):
            if isinstance(f, Integer):
                F.add(add=(k - 1) * (f.bits + 2 + _clog2(k)) + 2 * rb)
    elif kind == "lutpe":
        w, x = _parse(p.get("w", "int4")), _parse(p.get("x", "int8"))
        g, G = int(p.get("group", 4)), int(p.get("groups", 1))
        nb, xb = w.bits, x.bits
        eb = xb + _clog2(g) + 1
        half = 2 ** (g - 1)
        k = g * G
        rb = xb + _clog2(k) + nb + 2
        F.add(ff=k * (xb + nb) + G * half * eb + rb + _clog2(nb) + 3,
              table=G * half * eb, add=G * half * (g - 1) * eb + G * (eb + 1) + (G - 1) * eb
              + rb + (G * eb if isinstance(w, Integer) else 0),
              mux=k * nb + G * eb)
    elif kind == "shiftaddpe":
        x = _parse(p.get("x", "int8"))
        w = _parse(p.get("w", "int4_g128"))
        acc = _float_out(p.get("acc", "float32"), "acc")
        lanes = int(p.get("lanes", 4))
        if not isinstance(w, BlockScaled):
            raise ValueError("ShiftAddPe needs a grouped format")
        nb, xb = w.element.bits, x.bits
        gs = int(w.block_size)  # type: ignore[arg-type]
        pw = xb + nb + 1
        psum = xb + nb + _clog2(gs) + 1
        ps, _, _ = _sig(w.scale)
        F.add(add=lanes * (nb - 1) * pw + (lanes - 1) * (pw + _clog2(lanes)) + psum + psum,
              mux=lanes * nb * pw, mult=psum * ps)
        ew = max(_ew(w.scale) + 2, _ew(acc)) + 1
        W = _add_terms(F, psum + ps, acc.man_bits + 1, acc.man_bits + 1, ew)
        _round_to(F, acc, W, ew)
        F.add(ff=psum + acc.bits)
    else:
        raise ValueError(f"no component model for PE {pe!r}; modelled: FloatMul, FloatMac, "
                         "IntMac, BlockDot, Quantizer, BipolarPe, LutPe, ShiftAddPe")
    return dict(F)


def features_of(component: Any) -> dict[str, float]:
    """Features of a constructed rtl/ PE (its kind, formats and parameters)."""
    kind = component.kind
    fm, pr = component.formats, component.parameters
    opts: dict[str, Any] = {}
    if kind == "FloatMul":
        opts = {"a": fm["a"], "b": fm["b"], "out": None if pr["exact"] else fm["p"]}
    elif kind == "FloatMac":
        opts = {"a": fm["a"], "b": fm["b"], "acc": fm["acc"]}
    elif kind == "IntMac":
        opts = {"a": fm["a"], "b": fm["b"], "acc_bits": pr["acc_bits"],
                "overflow": pr["overflow"]}
    elif kind == "BlockDot":
        opts = {"a": component.a_format, "b": component.b_format, "acc": fm["acc"],
                "k": pr["k"]}
    elif kind == "Quantizer":
        opts = {"a": fm["x"], "out": fm["y"]}
    elif kind == "BipolarPe":
        opts = {"a": fm["a"], "b": fm["b"], "k": pr["k"]}
    elif kind == "LutPe":
        opts = {"w": fm["w"], "x": fm["x"], "group": pr["group"], "groups": pr["groups"]}
    elif kind == "ShiftAddPe":
        opts = {"x": fm["x"], "w": component.w_format, "acc": fm["acc"], "lanes": pr["lanes"]}
    if "stages" in pr:
        opts["stages"] = pr["stages"]
    return features(kind, **opts)
