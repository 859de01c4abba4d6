"""Cost model: synthesis wrapper, fitted estimate, energy, GEMM cost, Pareto fronts."""

from __future__ import annotations

import csv
import json
import math
import shutil

import pytest

import costmodel
from costmodel import (
    estimate,
    fit_quality,
    gemm_cost,
    operand_bits,
    pareto_front,
    synthesize,
)
from costmodel.calibrate import GRID, HELD_OUT, MODEL_TARGETS, load
from costmodel.energy import HOROWITZ_PJ, energy_fit
from costmodel.estimate import DOCUMENTED_ERROR
from costmodel.synth import YosysMissing, yosys_version
from formats import parse
from numfab.cli import main
from rtl import IntMac, build
from simulator import Datapath

PINNED = "Yosys 0.23 (git sha1 7ce5011c24b)"
#: IntMac(int4, int4, acc_bits=12) on the pinned yosys: exact counts
FIXED = {"xilinx": {"luts": 75, "ffs": 12}, "cmos": {"transistors": 2716, "ffs": 12}}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMFAB_CACHE", str(tmp_path))
    return tmp_path / "synth"


@pytest.mark.parametrize("target", ["xilinx", "cmos"])
def test_fixed_pe_is_stable(cache, target):
    r = synthesize(IntMac("int4", "int4", 12), target)
    for key, want in FIXED[target].items():
        got = getattr(r, key)
        if r.yosys == PINNED:
            assert got == want, (key, got)
        else:  # another yosys: within 20 %
            assert abs(got - want) <= 0.2 * want, (key, got, want)
    # cached: the same record without running yosys
    files = list(cache.glob("*.json"))
    assert len(files) == 1
    assert synthesize(IntMac("int4", "int4", 12), target) == r


def test_damaged_cache_is_rebuilt(cache):
    r = synthesize(IntMac("int2", "int2", 8), "cmos")
    (f,) = cache.glob("*.json")
    f.write_text("{not json")
    assert synthesize(IntMac("int2", "int2", 8), "cmos") == r
    assert json.loads(f.read_text())["transistors"] == r.transistors


def test_target_resources_parse(cache):
    pe = IntMac("int4", "int4", 12)
    ice = synthesize(pe, "ice40")
    ecp = synthesize(pe, "ecp5")
    dsp = synthesize(IntMac("int8", "int8", 24), "xilinx-dsp")
    assert ice.luts == ice.luts_by_size[4] > 0 and ice.ffs == 12
    assert ecp.primary == ecp.luts + 2 * ecp.carry and ecp.ffs == 12
    assert dsp.dsps == 1 and dsp.luts < 100


def test_bad_targets_and_missing_yosys(monkeypatch):
    with pytest.raises(ValueError, match="unknown target 'vivado'; choose one of xilinx"):
        synthesize(IntMac(), "vivado")
    with pytest.raises(ValueError, match="no cost model for target 'ice40'"):
        estimate("IntMac", target="ice40")
    with pytest.raises(ValueError, match="unknown PE 'Foo'; choose one of IntMac"):
        estimate("Foo")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(YosysMissing, match="apt-get install -y yosys"):
        yosys_version()


def test_calibration_grid_and_fit_quality():
    rows = load()
    assert len(GRID) >= 40
    for t in MODEL_TARGETS:
        sel = [r for r in rows if r["target"] == t]
        assert len(sel) == len(GRID)
        assert all(r["yosys"] for r in sel)
    q = fit_quality()
    for t in MODEL_TARGETS:
        assert q[t]["points"] >= 40
        assert q[t]["loo_max"] <= DOCUMENTED_ERROR[t]["loo_max"] + 1e-9
        assert q[t]["loo_median"] <= DOCUMENTED_ERROR[t]["loo_median"] + 1e-9


@pytest.mark.parametrize("kind,opts", HELD_OUT)
@pytest.mark.parametrize("target", MODEL_TARGETS)
def test_estimate_on_held_out_points(kind, opts, target):
    """Design points outside the calibration grid: estimate within the held-out error
    range the README states of the synthesized value."""
    assert (kind, opts) not in GRID
    syn = synthesize(build(kind, **opts), target)
    est = estimate(kind, target=target, **opts)
    rel = est.primary / syn.primary - 1
    doc = DOCUMENTED_ERROR[target]
    assert doc["held_out_low"] <= rel <= doc["held_out_high"], (est.primary, syn.primary)
    if target == "xilinx":
        assert est.ffs == syn.ffs


@pytest.mark.parametrize("kind,opts", GRID[::6], ids=lambda v: str(v))
def test_estimate_of_component_equals_by_name(kind, opts):
    """features_of(component) must read back the same sizes as the closed form."""
    for target in MODEL_TARGETS:
        assert estimate(build(kind, **opts), target=target) == estimate(kind, target=target,
                                                                         **opts)
    with pytest.raises(TypeError, match="options go with a PE kind name"):
        estimate(build(kind, **opts), a="int8")


def test_energy_matches_horowitz():
    coef, table = energy_fit()
    assert set(table) == set(HOROWITZ_PJ)
    for op, (pub, model) in table.items():
        assert abs(model - pub) / pub < 0.35, op
    e8 = costmodel.energy_per_op("IntMac", a="int8", b="int8", acc_bits=32)
    e4 = costmodel.energy_per_op("IntMac", a="int4", b="int4", acc_bits=32)
    fp = costmodel.energy_per_op("FloatMac", a="e4m3fn", b="e4m3fn", acc="float32")
    assert e4 < e8 < fp


def test_operand_bits_exact():
    assert operand_bits("mxfp4", 256, 256) * 4 == 17 * 256 * 256  # 4.25 bits
    assert operand_bits("nvfp4", 256, 256) == 256 * 256 * 4 + 256 * 16 * 8 + 32  # 4.5 + ts
    assert operand_bits("int4_g128", 256, 256) * 8 == 33 * 256 * 256  # 4.125 bits
    assert operand_bits("mxfp4", 3, 100) == 3 * 100 * 4 + 3 * 4 * 8  # partial block
    assert operand_bits("float8_e4m3fn", 5, 7) == 5 * 7 * 8


def test_gemm_cost():
    c = gemm_cost(1024, 512, 4096, "mxfp4", "mxfp4", "float32", array=(16, 8), freq=2e8)
    assert c.pe == "BlockDot" and c.macs_per_cycle == 8 and c.pes == 128
    assert c.cycles == (1024 // 16) * (512 // 8) * (4096 // 8) + 16 + 8
    assert math.isclose(c.seconds, c.cycles / 2e8)
    assert c.bytes["a"] == 1024 * 4096 * 4.25 / 8 and c.bytes["b"] == 512 * 4096 * 4.25 / 8
    assert c.bytes["c"] == 1024 * 512 * 4
    assert c.bytes["offchip"] == c.bytes["a"] + c.bytes["b"] + c.bytes["c"]
    assert c.bytes["onchip"] == c.bytes["a"] * 64 + c.bytes["b"] * 64
    assert math.isclose(c.energy_pj["total"], sum(v for k, v in c.energy_pj.items()
                                                  if k != "total"))
    assert c.area > 0 and c.area_unit.startswith("LUTs")
    i8 = gemm_cost(64, 64, 64, "int8", "int8", "int32")
    assert i8.pe == "IntMac" and i8.macs_per_cycle == 1
    # int products into a float accumulator: FloatMac, as for the datapath
    f8 = gemm_cost(64, 64, 64, "int8", "int8", "float32")
    assert f8.pe == "FloatMac" and f8.pe_options == {"a": "int8", "b": "int8", "acc": "float32"}
    w4 = gemm_cost(64, 64, 256, "int8", "int4_g128", "float32")
    assert w4.pe == "ShiftAddPe"
    with pytest.raises(ValueError, match="no PE model"):
        gemm_cost(8, 8, 8, "mxfp4", "float8_e4m3fn")
    with pytest.raises(ValueError, match="M must be a positive int"):
        gemm_cost(0, 8, 8, "int8", "int8", "int32")
    with pytest.raises(ValueError, match="array must be"):
        gemm_cost(8, 8, 8, "int8", "int8", "int32", array=(0, 4))


def test_pareto_front_hand_example():
    costs = [1, 2, 3, 4, 2, 5]
    kl = [0.9, 0.5, 0.5, 0.1, 0.7, 0.1]
    #      front  front  (dominated by 2)  front  (dominated by 2)  (dominated by 4)
    assert pareto_front(costs, kl) == [True, True, False, True, False, False]
    acc = [0.1, 0.5, 0.5, 0.9, 0.3, 0.9]  # higher is better
    assert pareto_front(costs, acc, lower_is_better=False) == [True, True, False, True,
                                                               False, False]
    assert pareto_front([1, 1], [2, 2]) == [True, True]
    with pytest.raises(ValueError, match="same length"):
        pareto_front([1], [1, 2])
    with pytest.raises(ValueError, match="must be finite; point 1"):
        pareto_front([1, 2], [0.5, float("nan")])


def test_cost_cli(capsys):
    assert main(["cost", "IntMac", "--a", "int4", "--b", "int4", "--acc", "int12",
                 "--target", "xilinx"]) == 0
    out = capsys.readouterr().out
    assert "synthesized" in out and "estimated" in out and "LUTs" in out
    assert main(["cost", "FloatMul", "--target", "vivado"]) == 2
    assert "choose one of" in capsys.readouterr().err
    assert main(["cost", "gemm", "--m", "64", "--n", "64", "--k", "256", "--a", "mxfp4"]) == 0
    assert '"pe": "BlockDot"' in capsys.readouterr().out
    # the same PEs as datapaths: synthesis from the cache the first call filled
    assert main(["cost", "--datapath", "a=int4 b=int4 acc=int12", "--target", "xilinx"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("IntMac {'a': 'int4', 'b': 'int4', 'acc': 'int12'} on xilinx")
    text = "a=mxfp4 b=mxfp4 acc=float32,nearest_even,tree32,chunk128->float32"
    assert main(["cost", "gemm", "--m", "64", "--n", "64", "--k", "256", "--datapath",
                 text]) == 0
    got = json.loads(capsys.readouterr().out)
    want = gemm_cost(64, 64, 256, Datapath.parse(text))
    assert got["pe"] == want.pe == "BlockDot" and got["pe_options"]["chunk"] == "128"
    assert got["cycles"] == want.cycles and got["area"] == want.area


def test_estimates_are_kept_but_validated_by_type():
    """A kind and options is described by rtl once and then kept; the key holds the
    options' types, so a value rtl refuses is refused even after an equal one it takes
    (True == 1 in Python) was kept."""
    from costmodel.features import describe

    first = describe("FloatMac", a="int8", b="e4m3fn", acc="bfloat16", stages=1)
    assert describe("FloatMac", a="int8", b="e4m3fn", acc="bfloat16", stages=1) is first
    assert first.kind == "FloatMac" and first.datapath.a == parse("int8")
    with pytest.raises(ValueError, match=r"^stages must be an int in 0\.\.1, not True$"):
        estimate("FloatMac", a="int8", b="e4m3fn", acc="bfloat16", stages=True)
    # an unhashable option value still gets rtl's own error
    with pytest.raises(TypeError, match=r"^a: format name must be a str, not list$"):
        estimate("FloatMac", a=["int8"])


def test_pricing_prints_no_amaranth_warning():
    """Fitting and estimating describe PEs without elaborating them; Amaranth is told so
    and warns of none, while a PE built and dropped unelaborated is still reported."""
    import gc
    import warnings

    from amaranth.hdl import UnusedElaboratable

    from rtl import FloatMul, to_verilog

    to_verilog(FloatMul(), "x")  # once anything is elaborated, Amaranth's warning is live
    gc.collect()  # PEs other tests built and dropped are reported before, not below
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        costmodel.refit()  # describes every calibration PE
        estimate("BlockDot", a="mxfp4", acc="float32", k=4)
        gemm_cost(64, 64, 64, Datapath.parse("a=int8 b=int4 acc=bfloat16,toward_zero"))
        gc.collect()
        assert not [w for w in caught if issubclass(w.category, UnusedElaboratable)]
        build("FloatMac")  # built for hardware and dropped: reported
        gc.collect()
    assert [w for w in caught if issubclass(w.category, UnusedElaboratable)]


def test_refit_reads_the_file_again(tmp_path):
    """refit() forgets the fit kept for a calibration file and fits the file as it is
    now (numfab cost calibrate rewrites it)."""
    from costmodel.calibrate import CALIBRATION_CSV
    from costmodel.estimate import fit

    path = tmp_path / "cal.csv"
    with CALIBRATION_CSV.open(newline="") as f:
        rows = list(csv.DictReader(f))
    fields = list(rows[0])

    def write(scale: float) -> None:
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fields)
            w.writeheader()
            w.writerows({**r, "primary": str(scale * float(r["primary"]))} for r in rows)

    write(1.0)
    before = fit(str(path))
    write(2.0)  # every synthesized cost doubled: every fitted coefficient doubles
    assert fit(str(path)) == before  # kept
    after = costmodel.refit(str(path))
    for t in before:
        for k, c in before[t].items():
            assert math.isclose(after[t][k], 2 * c, rel_tol=1e-6, abs_tol=1e-9)
