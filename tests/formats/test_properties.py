"""hypothesis properties over random formats, through formats.testing (which users get)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formats import FixedPoint, Integer, Minifloat, Rounding
from formats import testing as ft

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _inputs(fmt, data, n=60):  # type: ignore[no-untyped-def]
    return np.array(data.draw(st.lists(ft.rounding_inputs(fmt), min_size=1, max_size=n)))


@SETTINGS
@given(ft.formats_strategy(), st.data())
def test_nearest_properties(fmt, data) -> None:  # type: ignore[no-untyped-def]
    x = _inputs(fmt, data)

    def q(v: np.ndarray) -> np.ndarray:
        return fmt.quantize(v, overflow="saturate")

    ft.check_monotone(q, x)
    ft.check_idempotent(q, x)
    ft.check_half_ulp(q, fmt, x)
    ft.check_round_trip(fmt)
    symmetric = np.array_equal(np.sort(-np.unique(fmt.finite_values())),
                               np.unique(fmt.finite_values()))
    # Even-code ties are sign-symmetric where a value and its negation share code parity
    # (sign-magnitude and two's complement); bipolar and table codes need not.
    if symmetric and isinstance(fmt, (Minifloat, Integer, FixedPoint)):
        ft.check_sign_symmetric(q, x)


@SETTINGS
@given(ft.formats_strategy(), st.data())
def test_directed_properties(fmt, data) -> None:  # type: ignore[no-untyped-def]
    x = _inputs(fmt, data)
    ft.check_directed_brackets(fmt, x)
    for mode in (Rounding.UP, Rounding.DOWN, Rounding.TOWARD_ZERO):
        ft.check_monotone(lambda v, m=mode: fmt.quantize(v, m, "saturate"), x)


@SETTINGS
@given(ft.minifloats(), st.data())
def test_values_strategy_round_trips(fmt: Minifloat, data) -> None:  # type: ignore[no-untyped-def]
    v = data.draw(ft.values_of(fmt))
    back = fmt.quantize(np.array([v]))
    assert np.array_equal(back, [v], equal_nan=True)


def test_checks_catch_a_broken_quantizer() -> None:
    """The property checks must be able to fail."""
    fmt = Minifloat(4, 3, special="fn")
    x = np.linspace(-10, 10, 201)
    broken = lambda v: np.round(v * 3.7) / 3.7 - np.sign(v) * 0.3  # noqa: E731
    import pytest

    with pytest.raises(AssertionError):
        ft.check_half_ulp(broken, fmt, x)
    with pytest.raises(AssertionError):
        ft.check_idempotent(broken, x)
    with pytest.raises(AssertionError):
        ft.check_monotone(lambda v: -fmt.quantize(v), x)
    with pytest.raises(AssertionError):
        ft.check_sign_symmetric(lambda v: fmt.quantize(v + 0.01), x)


@pytest.mark.parametrize("table", [(1.0, -0.0), (-0.0, -1.0, 2.0), (0.0, 1.0)])
@pytest.mark.parametrize("mode", ["up", "down", "toward_zero", "nearest_even",
                                  "nearest_away"])
def test_lut_zero_of_either_sign_is_exact(table: tuple[float, ...], mode: str) -> None:
    """+0.0 and -0.0 are the same value: a table holding either zero represents both
    exactly in every mode (hypothesis found +0.0 rounded up to 1.0 against (1.0, -0.0))."""
    from formats import Lut

    got = Lut(table=table).quantize(np.array([0.0, -0.0]), mode, "saturate")
    assert (got == 0.0).all(), got
