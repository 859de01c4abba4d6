"""Component sizes of each processing element, in closed form from its formats.

The sizes follow the datapaths of ``rtl/`` (see ``rtl/_hw.py``): mantissa or integer
multipliers count ``wa * wb`` bit-products, adders / subtractors / comparators / negators
their width, barrel shifters ``width * stages`` (stages = bits of the shift amount),
leading-zero counters ``width * log2(width)``, 2:1 multiplexing its width, registers
their bits, table storage its bits. No component is elaborated: :func:`features` takes
well under a millisecond.

Chunked promotion adds the wide register, the step counter and its compare, and the
promotion adder (an aligned add and a rounding to the wide format); a product or
tree-sum rounding adds a rounder (normaliser, shifters, increment) and narrows what
follows to the rounded format's significand. A :class:`simulator.Datapath` is priced from
the datapath itself (the options ``rtl.datapath.pe_options`` gives), a built PE from what
it reports (:func:`features_of`); the two agree for every PE ``rtl.build`` makes.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

from formats import Integer, Minifloat, parse

__all__ = ["FEATURES", "Described", "as_pe", "describe", "features", "features_of"]

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


def _ew(f: Any) -> int:
    """Bits of an exponent computation on ``f`` (integers: a fixed exponent)."""
    return f.exp_bits + 2 if isinstance(f, Minifloat) else 4


def _round_to(F: _F, out: Minifloat, W: int, ew: int) -> None:
    man = out.man_bits
    XW = W + out.precision
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


def _promotion(F: _F, acc: Minifloat, p: dict[str, Any], per_step: int, ew: int) -> None:
    """Chunked promotion (``rtl``'s ``_promote``): the wide register, the step counter and
    its compare, the promotion adder (wide + narrow, rounded to the wide format) and the
    restart multiplexing."""
    if p["chunk"] is None:
        return
    wide = _float_out(p["chunk_format"], "chunk_format")
    pw = wide.precision
    ew = max(ew, _ew(wide) + 1)
    W = _add_terms(F, pw, acc.precision, pw, ew)
    _round_to(F, wide, W, ew)
    cb = _clog2(p["chunk"] // per_step + 1)
    F.add(ff=wide.bits + cb + (not wide.has_nan), add=2 * cb, mux=acc.bits + wide.bits)


def _rounder(F: _F, name: Any, parameter: str, W: int, ew: int) -> int:
    """One rounding of a ``W``-bit exact value to the format ``name`` and the unpacking of
    its code (``rtl._hw.round_term``); the significand bits that go on."""
    f = _float_out(name, parameter)
    _round_to(F, f, W, ew)
    F.add(mux=f.bits)
    return f.precision


def _closed_form(kind: str, p: dict[str, Any]) -> dict[str, float]:
    """Component sizes of a PE of ``kind`` (lower case) whose every parameter is in
    ``p`` (:func:`_inputs`); only ever called with the parameters of a PE that rtl/
    builds."""
    from rtl import significand_bits as sig  # the width rtl's unpacker gives an operand

    F = _F()
    if kind == "floatmul":
        a, b = _float_out(p["a"], "a"), _float_out(p["b"], "b")
        pa, pb = sig(a), sig(b)
        out = p["out"]
        if out is None:
            from rtl import exact_product_format

            fo = exact_product_format(a, b)
        else:
            fo = _float_out(out, "out")
        ew = max(_ew(a), _ew(b)) + 1
        F.add(mult=pa * pb, add=ew)
        _round_to(F, fo, pa + pb, ew)
        F.add(ff=p["stages"] * fo.bits)
    elif kind == "floatmac":
        a, b = _parse(p["a"]), _parse(p["b"])  # minifloats, integers or fixed point
        acc = _float_out(p["acc"], "acc")
        pa, pb, pc = sig(a), sig(b), acc.precision
        ew = max(_ew(a) + _ew(b), _ew(acc)) + 1
        F.add(mult=pa * pb, add=ew)
        wp = pa + pb
        if p["product_format"] is not None:
            wp = _rounder(F, p["product_format"], "product_format", wp, ew)
        W = _add_terms(F, wp, pc, pc, ew)
        _round_to(F, acc, W, ew)
        F.add(ff=acc.bits + (not acc.has_nan) + p["stages"] * (wp + ew + 3))
        _promotion(F, acc, p, 1, ew)
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
        pa, pb = sig(fa.element), sig(fb.element)
        pf = None if p["product_format"] is None else _float_out(p["product_format"],
                                                                  "product_format")
        from rtl import product_grid

        grid = product_grid(fa.element, fb.element, pf)
        width = grid.width
        F.add(mult=k * pa * pb, add=k * width)
        if pf is None:
            # each exact product shifts onto the grid by up to grid.left bits
            F.add(shift=k * width * _clog2(grid.left + 1) if grid.left else 0)
        else:
            ew_p = max(_ew(fa.element), _ew(fb.element)) + 1
            for _ in range(k):
                _rounder(F, pf, "product_format", pa + pb, ew_p)
            F.add(shift=k * width * (_clog2(grid.left + 1) + _clog2(grid.right + 1)),
                  add=k * ew_p)
        tree = width + _clog2(k)
        F.add(add=(k - 1) * tree + tree)
        if p["tree_format"] is not None:
            tree = _rounder(F, p["tree_format"], "tree_format", tree, _ew(acc) + 1)
        psa, psb = sig(fa.scale), sig(fb.scale)
        ws = tree + psa + psb
        F.add(mult=tree * psa + (tree + psa) * psb)
        ew = max(_ew(fa.scale) + _ew(fb.scale) + 2, _ew(acc)) + 1
        W = _add_terms(F, ws, acc.precision, acc.precision, ew)
        _round_to(F, acc, W, ew)
        F.add(ff=acc.bits + (not acc.has_nan) + p["stages"] * (ws + ew + 3))
        _promotion(F, acc, p, k, ew)
    elif kind == "fuseddot":
        _fused_dot(F, p)
    elif kind == "quantizer":
        fi, fo = _parse(p["a"]), _parse(p["out"])
        pi, ew = sig(fi), _ew(fi)
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
        ps = sig(w.scale)
        F.add(add=lanes * (nb - 1) * pw + (lanes - 1) * (pw + _clog2(lanes)) + psum + psum,
              mux=lanes * nb * pw, mult=psum * ps)
        ew = max(_ew(w.scale) + 2, _ew(acc)) + 1
        W = _add_terms(F, psum + ps, acc.precision, acc.precision, ew)
        _round_to(F, acc, W, ew)
        F.add(ff=psum + acc.bits)
    return dict(F)


def _fused_dot(F: _F, p: dict[str, Any]) -> None:
    """The fused multi-term adder (``rtl``'s FusedDot): ``n`` multipliers; each term's
    exponent (a leading-zero count of the product, or an adder of its operands'
    exponents); the largest exponent of the n (+1 with ``align_acc``) terms (compare and
    select tree); per term a right shift of its significand, widened by the window, onto
    the grid (with guard and sticky logic where the alignment rounds) and a conditional
    negation; the adder tree of the aligned terms and its magnitude; one rounding into
    the accumulator (``align_acc=False``: an aligned add of the accumulator first).

    Its word-wide selects (the compare-and-select tree of the exponents, the clamp of
    each shift amount, each term's conditional negation) count as shifter stages: one
    level of 2:1 multiplexers over the word, as a barrel shifter's stage. (Counted as
    ``mux`` they would be priced at that feature's fitted weight, zero on both targets,
    and the fused adder under-priced by a fifth; so counted, the held-out fused adder is
    priced within 4 % of its synthesis.)"""
    from rtl import significand_bits as sig

    a, b = _float_out(p["a"], "a"), _float_out(p["b"], "b")
    acc = _float_out(p["acc"], "acc")
    n, w = p["n"], p["align_bits"]
    pa, pb, pc = sig(a), sig(b), acc.precision
    wp = pa + pb
    ew = max(_ew(a) + _ew(b), _ew(acc)) + 1
    by_ops = p["align_from"] == "exponents"
    F.add(mult=n * pa * pb, add=n * ew)
    if not by_ops:
        F.add(lzc=n * wp * _clog2(wp))
    widths = [wp] * n
    if p["align_acc"]:
        F.add(lzc=pc * _clog2(pc), add=ew)
        widths.append(pc)
    terms = len(widths)
    rounds = p["align_rounding"] != "toward_zero"
    qw = w + (3 if by_ops else 2)
    for wt in widths:
        zw = wt + w + 1
        F.add(shift=(2 if rounds else 1) * zw * _clog2(zw + 2) + ew + qw + _clog2(zw + 2),
              add=ew + qw + 1)
        if rounds:
            F.add(add=qw)
    tree = qw + 1 + _clog2(terms)
    F.add(add=(terms - 1) * (ew + tree) + tree, shift=(terms - 1) * ew)
    if p["align_acc"]:
        _round_to(F, acc, tree, ew)
    else:
        W = _add_terms(F, tree, pc, pc, ew)
        _round_to(F, acc, W, ew)
    F.add(ff=acc.bits + (not acc.has_nan) + p["stages"] * n * (wp + ew + 3))
    _promotion(F, acc, p, n, ew)


def as_pe(pe: Any, options: dict[str, Any]) -> Any:
    """The rtl/ PE that ``pe`` names: a kind name described by ``rtl.describe(pe,
    **options)`` (what ``rtl.build`` makes, with rtl's validation: unknown kinds and
    options, impossible parameters; never elaborated, so it prints no Amaranth warning),
    a :class:`simulator.Datapath` (the PE that computes it), or an already built PE taken
    as it is (no options)."""
    import rtl
    from simulator import Datapath

    if isinstance(pe, (str, Datapath)):
        return rtl.describe(pe, **options)
    if not isinstance(pe, tuple(rtl.PE_KINDS.values())):
        raise TypeError(f"pe must be a PE kind name ({', '.join(rtl.PE_KINDS)}), a "
                        f"simulator.Datapath or a PE built by rtl, not {type(pe).__name__}")
    if options:
        raise TypeError("options go with a PE kind name, not with a built component "
                        f"(got {', '.join(sorted(options))})")
    return pe


@dataclasses.dataclass(frozen=True)
class Described:
    """What the cost model reads of a PE named by a kind and options or a datapath: its
    ``kind``, its :data:`FEATURES` (``features``, in that order) and the
    :class:`simulator.Datapath` it computes."""

    kind: str
    features: tuple[float, ...]
    datapath: Any

    def feature_dict(self) -> dict[str, float]:
        return dict(zip(FEATURES, self.features))


def describe(pe: Any, **options: Any) -> Described:
    """The :class:`Described` PE ``pe`` (a kind name with ``rtl.build`` options, or a
    :class:`simulator.Datapath`), validated by rtl once: the result is kept per kind and
    options (their types included, so ``stages=True`` is never taken for ``stages=1``)
    or per datapath, and a repeated call costs a dictionary lookup. A built PE is read
    afresh each time (it is not a value: it could be elaborated or changed).

    Raises
    ------
    TypeError, ValueError
        rtl's errors for what it cannot build (:func:`rtl.build`).
    """
    from simulator import Datapath

    if isinstance(pe, Datapath) and not options:
        return _described(pe)
    if isinstance(pe, str):
        key = (pe, tuple(sorted((k, type(v), v) for k, v in options.items())))
        try:
            hash(key)
        except TypeError:  # an unhashable option value: rtl gives its error or builds it
            return _describe(pe, options)
        return _described(key)
    return _describe(pe, options)


@functools.lru_cache(maxsize=4096)
def _described(key: Any) -> Described:
    """:func:`_describe` of a datapath or a hashable (kind, options) key."""
    if isinstance(key, tuple):
        kind, items = key
        return _describe(kind, {k: v for k, _, v in items})
    return _describe(key, {})


def _describe(pe: Any, options: dict[str, Any]) -> Described:
    from simulator import Datapath

    component = as_pe(pe, options)  # rtl's validation and errors
    if isinstance(pe, Datapath):
        from rtl.datapath import pe_options

        kind, opts = pe_options(pe)
        f = _closed_form(kind.lower(), _inputs(kind, opts))
    else:
        f = features_of(component)
    return Described(component.kind, tuple(f[k] for k in FEATURES), component.datapath)


#: each kind's feature inputs and their defaults (the PE's own where it has one)
_INPUTS: dict[str, dict[str, Any]] = {
    "FloatMul": {"a": None, "b": None, "out": None, "stages": 0},
    "FloatMac": {"a": None, "b": None, "acc": None, "stages": 0, "chunk": None,
                 "chunk_format": None, "product_format": None},
    "IntMac": {"a": None, "b": None, "acc_bits": None, "overflow": None, "stages": 0},
    "BlockDot": {"a": None, "b": None, "acc": None, "k": None, "stages": 0, "chunk": None,
                 "chunk_format": None, "product_format": None, "tree_format": None},
    "FusedDot": {"a": None, "b": None, "acc": None, "n": None, "align_bits": None,
                 "align_rounding": "toward_zero", "align_acc": True, "align_from": "value",
                 "stages": 0, "chunk": None, "chunk_format": None},
    "Quantizer": {"a": None, "out": None, "stages": 0},
    "BipolarPe": {"a": None, "b": None, "k": None},
    "LutPe": {"w": None, "x": None, "group": None, "groups": None},
    "ShiftAddPe": {"x": None, "w": None, "acc": None, "lanes": None},
}


def _inputs(kind: str, given: dict[str, Any]) -> dict[str, Any]:
    """The feature inputs of a ``kind`` PE from ``given`` (format objects or names,
    enums or their values): formats as canonical names, policies as their values."""
    out = {}
    for key, default in _INPUTS[kind].items():
        v = given.get(key, default)
        if key in ("a", "b", "acc", "out", "x", "w", "chunk_format", "product_format",
                   "tree_format") and v is not None:
            v = str(_parse(v) if isinstance(v, str) else v)
        out[key] = getattr(v, "value", v)
    return out


def features(pe: Any, **options: Any) -> dict[str, float]:
    """Component sizes of the PE ``pe``: a :class:`simulator.Datapath` (computed from
    the datapath itself: the kind and options ``rtl.datapath.pe_options`` gives, after
    rtl has validated them), a kind name with the options of ``rtl.build`` (described
    by rtl, so exactly what rtl accepts is priced), or a built rtl/ PE (read back from
    it, :func:`features_of`). Kept per datapath / kind and options (:func:`describe`)."""
    from simulator import Datapath

    if isinstance(pe, (str, Datapath)):
        return describe(pe, **options).feature_dict()
    return features_of(as_pe(pe, options))


def features_of(component: Any) -> dict[str, float]:
    """Features of a constructed rtl/ PE, read back from it: its kind, formats and
    parameters (the chunk and product formats it reports included)."""
    component = as_pe(component, {})
    kind = component.kind
    fm, pr = component.formats, component.parameters
    given: dict[str, Any] = {**pr, **{k: v for k, v in fm.items() if k in _INPUTS[kind]}}
    if kind == "FloatMul":
        given["out"] = None if pr["exact"] else fm["p"]
    elif kind in ("BlockDot", "ShiftAddPe"):
        given.update(a=getattr(component, "a_format", None),
                     b=getattr(component, "b_format", None),
                     w=getattr(component, "w_format", None))
    elif kind == "Quantizer":
        given.update(a=fm["x"], out=fm["y"])
    return _closed_form(kind.lower(), _inputs(kind, given))
