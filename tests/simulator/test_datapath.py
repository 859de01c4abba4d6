"""simulator.Datapath: one value for operand formats, accumulator and PE geometry, read
by simulator.gemm and rtl.build."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Accumulator, Datapath, gemm

FLOATS = ["float32", "float16", "bfloat16", "e5m10", "e8m23", "e4m3b7"]
MODES = ["nearest_even", "nearest_away", "toward_zero", "up", "down"]


@st.composite
def accumulators(draw: st.DrawFn) -> Accumulator:
    kind = draw(st.sampled_from(["float", "int", "exact"]))
    if kind == "exact":
        return Accumulator(None)
    if kind == "int":
        fmt = draw(st.sampled_from(["int32", "int16", "fixed<8,8>", "int24"]))
        ov = draw(st.sampled_from([None, "wrap", "saturate"]))
        return Accumulator(fmt, overflow=ov)
    fmt = draw(st.sampled_from(FLOATS))
    kw: dict = {"rounding": draw(st.sampled_from([*MODES, "stochastic"]))}
    if kw["rounding"] == "stochastic":
        kw["seed"] = draw(st.integers(0, 2**31))
        if draw(st.booleans()):
            kw["rand_bits"] = draw(st.integers(1, 20))
    kw["overflow"] = draw(st.sampled_from([None, "saturate"]))
    order = draw(st.sampled_from(["sequential", "pairwise", "tree"]))
    kw["order"] = order
    if order == "tree":
        kw["tree_width"] = draw(st.sampled_from([2, 4, 8, 32]))
        if draw(st.booleans()):
            kw["tree_format"] = draw(st.sampled_from(["float32", "bfloat16"]))
            kw["tree_rounding"] = draw(st.sampled_from(MODES))
    if draw(st.booleans()):
        kw["chunk"] = kw.get("tree_width", 1) * draw(st.integers(1, 16))
        kw["chunk_format"] = draw(st.sampled_from(["float32", "float64"]))
    if draw(st.booleans()):
        kw["product_format"] = draw(st.sampled_from(["e4m3", "bfloat16", "float16"]))
        kw["product_rounding"] = draw(st.sampled_from(MODES))
    return Accumulator(fmt, **kw)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(accumulators())
def test_accumulator_text_round_trips(acc: Accumulator) -> None:
    assert Accumulator.parse(str(acc)) == acc


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.sampled_from(["mxfp4", "nvfp4", "mxfp8_e4m3", "e4m3", "int8", "bfp8_b16",
                        "int4_g32", "fixed<4,4>"]),
       st.sampled_from(["mxfp4", "e5m2", "int8", "bf16"]), accumulators(),
       st.integers(1, 64))
def test_datapath_text_round_trips(a: str, b: str, acc: Accumulator, lanes: int) -> None:
    try:
        dp = Datapath(a, b, acc, lanes=lanes)
    except ValueError as exc:  # operands blocking K differently
        assert "must block K alike" in str(exc)
        return
    assert Datapath.parse(str(dp)) == dp


@pytest.mark.parametrize(("kw", "exc", "match"), [
    (dict(a="mxfp4", b="nvfp4"), ValueError, r"a and b must block K alike, not 32 .* and 16"),
    (dict(a="block<e4m3;e8m0;16x16;floor>", b="e4m3"), ValueError,
     r"a must have 1-D blocks along K, not tiles 16x16"),
    (dict(a="e4m3", b="e9m9x"), ValueError, r"^b: unknown format name 'e9m9x'"),
    (dict(a=None, b="e4m3"), TypeError, r"^a: format name must be a str"),
    (dict(a="mxfp4", b="mxfp4", accumulator=Accumulator("float32", order="tree",
                                                        tree_width=32), k=12),
     ValueError, r"k must divide the accumulator's tree width 32"),
    (dict(a="e4m3", b="e4m3", k=4), ValueError, r"k must be 1 with sequential accumulation"),
    (dict(a="e4m3", b="e4m3", k=True), TypeError, r"k must be an int in 1\.\.1048576"),
    (dict(a="e4m3", b="e4m3", lanes=0), ValueError, r"lanes must be an int in 1\.\.4096, not 0"),
    (dict(a="e4m3", b="e4m3", accumulator="float32,sideways"), ValueError,
     r"cannot read 'sideways'"),
    (dict(a="e4m3", b="e4m3", accumulator="float32,bogus=1"), ValueError,
     r"unknown setting 'bogus'; settings: overflow"),
])
def test_bad_datapaths(kw: dict, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        Datapath(**kw)


@pytest.mark.parametrize(("text", "match"), [
    ("a=e4m3", r"names no b format"),
    ("a=e4m3 b=e4m3 k=two", r"k must be a positive integer, not 'two'"),
    ("a=e4m3 b=e4m3 a=e5m2", r"a is given twice"),
    ("e4m3 e4m3", r"cannot read 'e4m3'"),
    ("a=e4m3 b=e4m3 colour=red", r"cannot read 'colour=red'"),
])
def test_bad_datapath_text(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Datapath.parse(text)


def test_gemm_takes_the_datapath() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 96)), rng.standard_normal((96, 5))
    acc = Accumulator("bfloat16", rounding="toward_zero", order="tree", tree_width=32,
                      chunk=64)
    dp = Datapath("mxfp4", "mxfp8_e4m3", acc)
    want = gemm(a, b, a_format="mxfp4", b_format="mxfp8_e4m3", accumulator=acc)
    np.testing.assert_array_equal(gemm(a, b, datapath=dp), want)
    np.testing.assert_array_equal(gemm(a, b, datapath=str(dp)), want)
    # the accumulator's text is accepted wherever an accumulator is
    np.testing.assert_array_equal(
        gemm(a, b, a_format="mxfp4", b_format="mxfp8_e4m3", accumulator=str(acc)), want)
    with pytest.raises(ValueError, match="either datapath= or a_format/b_format/accumulator"):
        gemm(a, b, datapath=dp, a_format="mxfp4")
    with pytest.raises(TypeError, match="datapath must be a Datapath or its text"):
        gemm(a, b, datapath=3)


ENCODED = ["mxfp4", "mxfp8_e5m2", "mxint8", "nvfp4", "nvint4", "bfp8_b16", "int4_g32",
           "uint4_g32_asym", "uint8_g16_asym"]


@pytest.mark.parametrize("name", ENCODED)
def test_encoded_operands_equal_values(name: str) -> None:
    """Codes + scales (+ zero points, + tensor scale) into gemm give exactly what the values
    give: A blocked along its last axis, B along its first of the last two."""
    import dataclasses

    import formats

    rng = np.random.default_rng(len(name))
    a, b = rng.standard_normal((2, 3, 80)) * 3, rng.standard_normal((2, 80, 4))
    f = formats.parse(name)
    ea = dataclasses.replace(f, axis=-1).encode(a)
    eb = dataclasses.replace(f, axis=-2).encode(b)
    for acc in (Accumulator("float32"), Accumulator("bfloat16", rounding="toward_zero",
                                                      order="tree", tree_width=16),
                Accumulator(None)):
        want = gemm(a, b, a_format=f, b_format=f, accumulator=acc)
        np.testing.assert_array_equal(gemm(ea, eb, accumulator=acc), want)
        np.testing.assert_array_equal(gemm(ea, b, b_format=f, accumulator=acc), want)


def test_scalar_codes_equal_values() -> None:
    import formats
    from simulator import Codes

    f = formats.parse("e4m3")
    rng = np.random.default_rng(0)
    ca, cb = rng.integers(0, 256, (5, 40)), rng.integers(0, 256, (40, 3))
    ca[ca & 0x7F == 0x7F] = 0  # NaN codes
    cb[cb & 0x7F == 0x7F] = 0
    va, vb = f.decode(ca).astype(np.float64), f.decode(cb).astype(np.float64)
    want = gemm(va, vb, a_format=f, b_format=f, accumulator="float16")
    got = gemm(Codes(ca, "e4m3"), Codes(cb, f), accumulator="float16")
    np.testing.assert_array_equal(got, want)


def test_bad_encoded_operands() -> None:
    import dataclasses

    import formats
    from simulator import Codes

    f = formats.parse("mxfp4")
    x = np.ones((4, 64))
    along_rows = dataclasses.replace(f, axis=0).encode(x)
    with pytest.raises(ValueError, match=r"a is blocked along axis 0 of shape \(4, 64\); its "
                       r"blocks must run along K, the last axis \(1\)"):
        gemm(along_rows, np.ones((64, 2)), b_format=f)
    ea = f.encode(x)
    with pytest.raises(ValueError, match=r"a_format float8_e4m3fn differs from the format of "
                       r"the encoded operand a \(mxfp4\)"):
        gemm(ea, np.ones((64, 2)), a_format="e4m3", b_format=f)
    bad = dataclasses.replace(ea, scales=ea.scales[:, :1])
    with pytest.raises(ValueError, match=r"a's scales have shape \(4, 1\); codes of shape "
                       r"\(4, 64\) in blocks of 32 along axis 1 need \(4, 2\)"):
        gemm(bad, np.ones((64, 2)), b_format=f)
    with pytest.raises(TypeError, match="Codes takes codes of a scalar format, not of the "
                       "block format mxfp4"):
        Codes(np.zeros((2, 2), np.int64), "mxfp4")
    with pytest.raises(ValueError, match=r"b must have at least 2 dimensions"):
        gemm(np.ones((2, 3)), Codes(np.zeros(3, np.int64), "e4m3"))
