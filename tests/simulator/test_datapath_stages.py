"""simulator.Datapath's PE-stage fields: ``terms`` (no running sum), ``lut`` (table
lookups), ``out`` (one rounding of each output), ``b=None`` (a conversion), and ``k``
dividing an adder tree's width (a tree taken over several cycles)."""

from __future__ import annotations

import pytest

from formats import Overflow, Rounding, parse
from simulator import Accumulator, Datapath

TEXTS = [
    "a=float8_e4m3fn b=float8_e4m3fn acc=exact k=1 lanes=1 terms=1",
    "a=float8_e4m3fn b=float8_e5m2 acc=exact k=1 lanes=1 terms=1 "
    "out=bfloat16,up,overflow=saturate",
    "a=float32 b=none acc=exact k=1 lanes=1 terms=1 out=int4,down,overflow=wrap",
    "a=float32 b=none acc=exact k=1 lanes=1 terms=1 out=fixed<4,4>,nearest_even",
    "a=bipolar4 b=int4 acc=exact,tree16 k=16 lanes=1 terms=16",
    "a=int8 b=int4 acc=exact,tree4 k=4 lanes=1 terms=12 lut=true",
    "a=int8 b=int4_g128 acc=float32,nearest_even,tree128 k=8 lanes=1",
    "a=mxfp4 b=mxfp4 acc=float32,nearest_even,tree32 k=32 lanes=1 out=bfloat16,nearest_even",
]


@pytest.mark.parametrize("text", TEXTS)
def test_stage_fields_round_trip(text: str) -> None:
    dp = Datapath.parse(text)
    assert str(dp) == text
    assert Datapath.parse(str(dp)) == dp


def test_stage_fields_are_normalised() -> None:
    dp = Datapath("e4m3", "e5m2", None, terms=1, out="bf16", out_rounding="up")
    assert dp.out == parse("bfloat16") and dp.out_rounding is Rounding.UP
    assert dp.out_overflow is Overflow.INF  # bfloat16's own
    assert Datapath("int8", "int4", Accumulator(None, order="tree", tree_width=8),
                    terms=16).k == 8
    conv = Datapath.parse("a=float16 b=none terms=1 acc=exact out=e4m3")
    assert conv.b is None and conv.out == parse("float8_e4m3fn")


@pytest.mark.parametrize(("kw", "exc", "match"), [
    (dict(terms=2, k=1), ValueError, r"terms=2 \(no running sum\) needs the exact "
     r"accumulator \(acc=exact; round the sum with out=\), not float32"),
    (dict(accumulator=None, terms=0), ValueError, r"terms must be an int in 1\.\.1048576, "
     r"not 0"),
    (dict(accumulator=Accumulator(None, order="tree", tree_width=4), terms=6), ValueError,
     r"terms must be a multiple of k=4 \(whole trees per output\), not 6"),
    (dict(accumulator=None, terms=1, lut=1), TypeError, r"lut must be True or False, not 1"),
    (dict(accumulator=Accumulator(None, order="pairwise"), k=2, terms=4, lut=True),
     ValueError, r"lut=True looks up the k products of an adder tree"),
    (dict(accumulator=None, terms=1, out="mxfp4"), ValueError,
     r"out must be a scalar format, not the block format mxfp4"),
    (dict(accumulator=None, terms=1, out="e4m3", out_rounding="stochastic"), ValueError,
     r"out_rounding must be a deterministic rounding mode"),
    (dict(accumulator=None, terms=1, out_overflow="saturate"), ValueError,
     r"out_overflow needs out"),
    (dict(accumulator=None, terms=1, out="e4m3", out_overflow="inf"), ValueError,
     r"overflow for float8_e4m3fn must be one of"),
    (dict(b=None, accumulator=None, terms=1), ValueError,
     r"b=None \(a conversion of a's values\) needs terms=1 and an out format"),
    (dict(b=None), ValueError, r"b=None \(a conversion"),
    (dict(a="mxfp4", b=None, accumulator=None, terms=1, out="e4m3"), ValueError,
     r"b=None converts a scalar format, not the block format mxfp4"),
    (dict(a="mxfp4", accumulator=Accumulator("float32", order="tree", tree_width=32), k=12),
     ValueError, r"k must divide the accumulator's tree width 32 \(the PE takes a tree's "
     r"products over tree_width / k cycles\), not 12"),
])
def test_bad_stage_fields(kw: dict, exc: type[Exception], match: str) -> None:
    args = {"a": "e4m3", "b": "e4m3", **kw}
    with pytest.raises(exc, match=match):
        Datapath(**args)


@pytest.mark.parametrize(("text", "match"), [
    ("a=e4m3 b=e4m3 acc=exact terms=x", r"terms must be a positive integer, not 'x'"),
    ("a=e4m3 b=e4m3 acc=exact terms=1 lut=yes", r"lut must be true or false, not 'yes'"),
    ("a=e4m3 b=e4m3 acc=exact terms=1 out=e4m3,mode=up", r"cannot read 'mode=up' in out"),
    ("a=e4m3 b=e4m3 acc=exact terms=1 out=e4m3,sideways", r"rounding"),
    ("a=e4m3 b=e4m3 acc=float32 accumulator=float16", r"cannot read 'accumulator=float16'"),
])
def test_bad_stage_text(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Datapath.parse(text)
