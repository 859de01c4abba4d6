"""Quantization techniques in simulator.torch: each keeps the unquantized output and
helps where the literature says it does."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from simulator.techniques import hadamard_matrix, rotate
from simulator.torch import LayerSpec, simulate


def _err(y: torch.Tensor, ref: torch.Tensor) -> float:
    y, ref = y.detach(), ref.detach()
    return float((y - ref).pow(2).mean() / ref.pow(2).mean())


def _correlated(n: int, k: int, seed: int) -> torch.Tensor:
    # one fixed mixing matrix (the distribution); samples differ by seed
    mix = torch.randn(k // 4, k, generator=torch.Generator().manual_seed(12345))
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, k // 4, generator=g)
    return z @ mix + 0.1 * torch.randn(n, k, generator=g)


def _outliers(n: int, k: int, seed: int, cols: tuple[int, ...] = (3, 70, 150)) -> torch.Tensor:
    x = torch.randn(n, k, generator=torch.Generator().manual_seed(seed))
    x[:, list(cols)] *= 40.0
    return x


def test_hadamard_matrix_orthonormal() -> None:
    h = hadamard_matrix(64)
    torch.testing.assert_close(h @ h, torch.eye(64, dtype=h.dtype), atol=1e-12, rtol=0)
    x = torch.randn(3, 128, dtype=torch.float64)
    torch.testing.assert_close(rotate(rotate(x, 32), 32), x, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="power of two"):
        hadamard_matrix(12)


@pytest.mark.parametrize("spec", [dict(hadamard="full"), dict(hadamard="block",
                                                              hadamard_block=32),
                                  dict(hadamard="block", weight="mxfp4"),
                                  dict(rearrange=True, smoothquant=0.5, hadamard="full")])
def test_unquantized_output_unchanged(spec: dict) -> None:
    torch.manual_seed(0)
    lin = nn.Linear(256, 48)
    x = _outliers(64, 256, 1)
    ref = lin(x).detach()
    plain = {k: v for k, v in spec.items() if k != "weight"}
    if plain.get("hadamard") == "block":
        plain.setdefault("hadamard_block", 32)
    sim = simulate(lin, LayerSpec(**plain))
    if sim.layers[""].needs_calibration:
        sim.calibrate([x])
    y = sim(x).detach()
    sim.restore()
    assert float((y - ref).abs().max() / ref.abs().max()) < 1e-5, spec
    if "weight" in spec:  # the quantized model runs too, and differs
        with simulate(lin, LayerSpec(**spec)) as sm:
            assert not torch.equal(sm(x), ref)


def test_hadamard_helps_nvint4_with_outliers() -> None:
    torch.manual_seed(1)
    lin = nn.Linear(256, 64)
    x = _outliers(128, 256, 2)
    ref = lin(x)
    errs = {}
    for had in (None, "block"):
        with simulate(lin, LayerSpec(weight="nvint4", act="nvint4", hadamard=had)) as sm:
            errs[had] = _err(sm(x), ref)
    assert errs["block"] < errs[None]


@pytest.mark.parametrize("wf", ["int4_g128", "mxfp4"])
def test_gptq_beats_round_to_nearest(wf: str) -> None:
    torch.manual_seed(2)
    lin = nn.Linear(256, 64)
    calib = [_correlated(256, 256, s) for s in range(4)]
    x = _correlated(256, 256, 99)
    ref = lin(x)
    with simulate(lin, LayerSpec(weight=wf)) as sm:
        rtn = _err(sm(x), ref)
    sim = simulate(lin, LayerSpec(weight=wf, gptq=True))
    sim.calibrate(calib)
    g = _err(sim(x), ref)
    sim.restore()
    assert g < 0.8 * rtn
    # act_order (static groups) works too and also beats RTN
    sim = simulate(lin, LayerSpec(weight=wf, gptq=True, act_order=True))
    sim.calibrate(calib)
    assert _err(sim(x), ref) < rtn
    sim.restore()


def test_smoothquant_reduces_activation_error() -> None:
    torch.manual_seed(3)
    lin = nn.Linear(256, 64)
    x = _outliers(128, 256, 4)
    ref = lin(x)
    spec = dict(weight="int8", act="int8", act_granularity="tensor")
    with simulate(lin, LayerSpec(**spec)) as sm:
        base = _err(sm(x), ref)
    sim = simulate(lin, LayerSpec(**spec, smoothquant=0.5))
    sim.calibrate([x])
    assert _err(sim(x), ref) < 0.5 * base
    sim.restore()


def test_mse_clip_lowers_weight_error() -> None:
    torch.manual_seed(4)
    lin = nn.Linear(256, 64)
    x = torch.randn(64, 256)
    ref = lin(x)
    with simulate(lin, LayerSpec(weight="int4_g32")) as sm:
        e_rtn = _err(sm(x), ref)
    with simulate(lin, LayerSpec(weight="int4_g32", clip="mse")) as sm:
        e_mse = _err(sm(x), ref)
    assert e_mse < e_rtn
    with pytest.raises(ValueError, match="clip='mse' needs scaled"):
        with simulate(lin, LayerSpec(weight="e4m3", clip="mse")) as sm:
            sm(x)


def test_llm_int8_outliers_and_rearrange() -> None:
    torch.manual_seed(5)
    lin = nn.Linear(256, 64)
    x = _outliers(128, 256, 6)
    ref = lin(x)
    with simulate(lin, LayerSpec(weight="int8", act="int8")) as sm:
        base = _err(sm(x), ref)
    with simulate(lin, LayerSpec(weight="int8", act="int8", outliers=6.0)) as sm:
        assert _err(sm(x), ref) < 0.5 * base
    # rearrangement: outlier channels share one MXFP4 block instead of spoiling three
    with simulate(lin, LayerSpec(weight="mxfp4", act="mxfp4")) as sm:
        mx = _err(sm(x), ref)
    sim = simulate(lin, LayerSpec(weight="mxfp4", act="mxfp4", rearrange=True))
    sim.calibrate([x])
    assert _err(sim(x), ref) < mx
    sim.restore()


def test_technique_errors() -> None:
    lin = nn.Linear(48, 8)
    with pytest.raises(ValueError, match="needs K a power of two"):
        simulate(lin, LayerSpec(hadamard="full"))
    with simulate(nn.Linear(64, 8), LayerSpec(weight="int4_g32", gptq=True)) as sm:
        with pytest.raises(ValueError, match="needs calibration for gptq"):
            sm(torch.randn(2, 64))
    with pytest.raises(ValueError, match="cannot take hadamard"):
        simulate(nn.Conv2d(4, 4, 1), LayerSpec(hadamard="block", hadamard_block=4))
    with pytest.raises(ValueError, match="smoothquant"):
        LayerSpec(smoothquant=2.0)
    with pytest.raises(ValueError, match="gptq and clip need a weight format"):
        LayerSpec(gptq=True)
    with pytest.raises(ValueError, match="hadamard must be"):
        LayerSpec(hadamard="yes")
    sim = simulate(nn.Linear(64, 8), LayerSpec(weight="int8", rearrange=True))
    with pytest.raises(ValueError, match="no batches"):
        sim.calibrate([])
    sim.restore()


def test_smoothquant_folds_into_norms() -> None:
    from tests.simulator.tiny_lm import ids as _ids
    from tests.simulator.tiny_lm import model as _model

    m = _model()
    ids = _ids()
    ref = m(ids).detach()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    cfg = {"layers.*.self_attn.[qkv]_proj": {"smoothquant": 0.5},
           "layers.*.mlp.0": {"smoothquant": 0.5}}
    sim = simulate(m, cfg)
    sim.calibrate([ids])
    # q/k/v share norm1, the MLP's first layer reads norm2: one scale vector per norm
    assert sim.folded == {f"layers.{i}.norm{j}": names for i in (0, 1) for j, names in (
        (1, [f"layers.{i}.self_attn.{p}_proj" for p in "qkv"]), (2, [f"layers.{i}.mlp.0"]))}
    assert not torch.equal(m.layers[0].norm1.weight, before["layers.0.norm1.weight"])
    assert all(q.smooth is None for q in sim.quant_layers().values())
    assert float((sim(ids).detach() - ref).abs().max() / ref.abs().max()) < 1e-5
    # quantized: folding and online scales agree up to float rounding of the scaling
    sim.restore()
    sd = m.state_dict()
    assert all(torch.equal(sd[k], before[k]) for k in sd)
    q_cfg = {k: {**v, "weight": "int8", "act": "int8"} for k, v in cfg.items()}
    sim = simulate(m, q_cfg)
    folded = sim.calibrate([ids]).folded
    y_fold = sim(ids).detach()
    sim.restore()
    sim = simulate(m, q_cfg)
    sim.calibrate([ids], fold=False)
    assert sim.folded == {} and folded
    y_online = sim(ids).detach()
    sim.restore()
    assert float((y_fold - y_online).abs().max() / ref.abs().max()) < 0.05
    assert all(torch.equal(m.state_dict()[k], before[k]) for k in sd)
    # only some of a norm's consumers smoothed (k_proj unpatched reads norm1 too): the
    # unquantized-output check undoes that fold
    sim = simulate(m, {"layers.*.self_attn.q_proj": {"smoothquant": 0.5}})
    sim.calibrate([ids])
    assert sim.folded == {}
    sim.restore()
    assert all(torch.equal(m.state_dict()[k], before[k]) for k in sd)
