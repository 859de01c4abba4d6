"""The exact references agree on their shared domain.

formats.reference rounds a rational two independent ways: ``ref_encode`` searches the
format's value grid for the neighbours of x and returns a code, ``ref_round`` does
arithmetic on the format's LSB at x and returns a value. They must agree for signed
minifloats with subnormals and fixed point, in every deterministic mode and overflow
policy but ``error`` (raised elsewhere) and ``wrap`` (``ref_encode`` models no
wrap-around). simulator.reference.ref_round, the accumulator's rounding, is
formats.reference.ref_round for deterministic modes; its stochastic rounding picks one
of the two neighbours, the upper one for exactly the share of the random stream's top
bits that the discarded fraction's top bits give. Inputs: every grid value, the midpoints
and their near neighbours, values beyond the range, and random rationals."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest

import formats.reference as fr
from formats import Overflow, Rounding, parse
from formats.reference import ref_decode, ref_encode, ref_grid
from simulator.reference import ref_round

FORMATS = ["e4m3", "e5m2", "e2m1", "e3m2", "float8_e4m3", "e4m3b11fnuz", "e3m4",
           "fixed<3,2>", "int6", "fixed<-1,5>"]
MODES = [m for m in Rounding if m is not Rounding.STOCHASTIC]


def _inputs(fmt) -> list[Fraction]:
    vals = sorted({v for v, _ in ref_grid(fmt)})
    tiny = Fraction(1, 2**80)
    out = set(vals)
    for lo, hi in zip(vals, vals[1:]):
        mid = (lo + hi) / 2
        out |= {mid, mid + tiny, mid - tiny, lo + tiny, hi - tiny}
    top = vals[-1]
    out |= {top * 2, -top * 2, top + (top - vals[-2]) / 2, -(top + (top - vals[-2]) / 2)}
    rng = random.Random(str(fmt))
    out |= {Fraction(rng.randint(-10**6, 10**6), rng.randint(1, 10**5)) for _ in range(200)}
    return sorted(out)


@pytest.mark.parametrize("fmt", [parse(n) for n in FORMATS], ids=str)
def test_references_agree(fmt) -> None:
    policies = [p for p in fmt.allowed_overflow if p not in (Overflow.ERROR, Overflow.WRAP)]
    xs = _inputs(fmt)
    checked = 0
    for mode in MODES:
        for policy in policies:
            for x in xs:
                code = ref_encode(fmt, x, mode, policy)
                want = math.nan if code is None else ref_decode(fmt, code)
                got = fr.ref_round(x, fmt, mode, policy)
                if isinstance(want, float) and math.isnan(want):
                    assert isinstance(got, float) and math.isnan(got), (x, mode, policy, got)
                else:
                    assert got == want, (x, mode, policy, got, want)
                assert ref_round(x, fmt, mode, policy) == got or math.isnan(got)
                checked += 1
    assert checked == len(MODES) * len(policies) * len(xs)


@pytest.mark.parametrize("fmt", [parse(n) for n in ("e4m3", "e2m1", "fixed<3,2>")], ids=str)
def test_stochastic_rounding_picks_a_neighbour_in_proportion(fmt) -> None:
    rbits = 4
    xs = [x for x in _inputs(fmt) if fmt.min <= x <= fmt.max][::7]
    for x in xs:
        down = fr.ref_round(x, fmt, Rounding.TOWARD_ZERO, Overflow.SATURATE)
        up = fr.ref_round(x, fmt, Rounding.UP if x > 0 else Rounding.DOWN, Overflow.SATURATE)
        # every value of the stream's top rbits once
        got = [ref_round(x, fmt, Rounding.STOCHASTIC, Overflow.SATURATE, t << (62 - rbits), rbits)
               for t in range(2**rbits)]
        assert set(got) <= {down, up}, (x, got, down, up)
        if down != up:
            share = (abs(x) - abs(down)) / (abs(up) - abs(down))
            assert got.count(up) == math.floor(share * 2**rbits), (x, got)
