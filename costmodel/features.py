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

from formats import BipolarInt, FixedBase, Integer, Minifloat, parse

__all__ = ["FEATURES", "as_pe", "features", "features_of"]

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
    if isinstance(f, (FixedBase, BipolarInt)):
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


def _closed_form(kind: str, p: dict[str, Any]) -> dict[str, float]:
    """Component sizes of a PE of ``kind`` (lower case) whose every parameter is in
    ``p``; only ever called with the parameters of a PE that rtl/ built."""
    F = _F()
    if kind == "floatmul":
        a, b = _float_out(p["a"], "a"), _float_out(p["b"], "b")
        pa, _, _ = _sig(a)
        pb, _, _ = _sig(b)
        out = p["out"]
        if out is None:
            from rtl._hw import exact_product_format
            fo = exact_product_format(a, b)
        else:
            fo = _float_out(out, "out")
        ew = max(_ew(a), _ew(b)) + 1
        F.add(mult=pa * pb, add=ew)
        _round_to(F, fo, pa + pb, ew)
        F.add(ff=p["stages"] * fo.bits)
    elif kind == "floatmac":
        a, b = _float_out(p["a"], "a"), _float_out(p["b"], "b")
        acc = _float_out(p["acc"], "acc")
        pa, pb, pc = a.man_bits + 1, b.man_bits + 1, acc.man_bits + 1
        ew = max(_ew(a) + _ew(b), _ew(acc)) + 1
        F.add(mult=pa * pb, add=ew)
        W = _add_terms(F, pa + pb, pc, pc, ew)
        _round_to(F, acc, W, ew)
        F.add(ff=acc.bits + p["stages"] * (pa + pb + ew + 3))
    elif kind == "intmac":
        a, b = _parse(p["a"]), _parse(p["b"])
        n = p["acc_bits"]
        F.add(mult=a.bits * b.bits, add=n + 1, ff=n + p["stages"] * (a.bits + b.bits))
        if p["overflow"] == "saturate":
            F.add(add=2 * n, mux=n)
    elif kind == "blockdot":
        fa, fb = _parse(p["a"]), _parse(p["b"])
        acc = _float_out(p["acc"], "acc")
        k = p["k"]
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
        F.add(ff=acc.bits + p["stages"] * (ws + ew + 3))
    elif kind == "quantizer":
        fi, fo = _parse(p["a"]), _parse(p["out"])
        pi, _, _ = _sig(fi)
        ew = (fi.exp_bits + 2) if isinstance(fi, Minifloat) else 4
        if isinstance(fo, Minifloat):
            _round_to(F, fo, pi, ew)
        else:
            F.add(shift=2 * (pi + fo.bits + 2) * _clog2(pi + fo.bits), add=2 * (pi + fo.bits)
                  + 3 * fo.bits, mux=3 * fo.bits)
        F.add(ff=p["stages"] * fo.bits)
    elif kind == "bipolarpe":
        a, b = _parse(p["a"]), _parse(p["b"])
        k = p["k"]
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
        w, x = _parse(p["w"]), _parse(p["x"])
        g, G = p["group"], p["groups"]
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
        x, w = _parse(p["x"]), _parse(p["w"])
        acc = _float_out(p["acc"], "acc")
        lanes = p["lanes"]
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
    return dict(F)


def as_pe(pe: Any, options: dict[str, Any]) -> Any:
    """The rtl/ PE that ``pe`` names: a kind name built by ``rtl.build(pe, **options)``
    (rtl's own validation: unknown kinds and options, impossible parameters), a
    :class:`simulator.Datapath` (the PE that computes it, ``rtl.build(datapath)``), or an
    already built PE taken as it is (no options)."""
    import rtl
    from simulator import Datapath

    if isinstance(pe, (str, Datapath)):
        return rtl.build(pe, **options)
    if not isinstance(pe, tuple(rtl.PE_KINDS.values())):
        raise TypeError(f"pe must be a PE kind name ({', '.join(rtl.PE_KINDS)}), a "
                        f"simulator.Datapath or a PE built by rtl, not {type(pe).__name__}")
    if options:
        raise TypeError("options go with a PE kind name, not with a built component "
                        f"(got {', '.join(sorted(options))})")
    return pe


def features(pe: Any, **options: Any) -> dict[str, float]:
    """Component sizes of the PE ``pe``: a kind name with the options of ``rtl.build``
    (built, so exactly what rtl accepts is priced), or a built rtl/ PE."""
    return features_of(as_pe(pe, options))


def features_of(component: Any) -> dict[str, float]:
    """Features of a constructed rtl/ PE (its kind, formats and parameters)."""
    component = as_pe(component, {})
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
    return _closed_form(kind.lower(), opts)
