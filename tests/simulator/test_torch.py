"""simulator.torch: patching, restoring, fake quantization, bit-true routing, STE."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import formats
import simulator
from simulator.torch import LayerSpec, fake_quant, layer_names, restore, simulate
from tests.simulator.tiny_lm import ids as _ids
from tests.simulator.tiny_lm import model as _model


def test_simulate_restores_bit_for_bit() -> None:
    m = _model()
    ids = _ids()
    ref = m(ids)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    objs = dict(m.named_modules())
    cfg = {"*": {"weight": "mxfp4", "act": "mxfp8_e4m3"},
           "layers.*.self_attn": {"kv": "nvfp4"}}
    with simulate(m, cfg) as sm:
        q = sm(ids)
        assert not torch.equal(q, ref)
        assert any(isinstance(x, simulator.torch.QuantLayer) for x in sm.modules())
    after = dict(m.named_modules())
    assert after.keys() == objs.keys() and all(after[k] is objs[k] for k in objs)
    sd = m.state_dict()
    assert sd.keys() == before.keys() and all(torch.equal(sd[k], before[k]) for k in sd)
    assert torch.equal(m(ids), ref)
    # function form: stays patched until restore()
    sim = simulate(m, cfg)
    assert torch.equal(sim(ids), q)
    with pytest.raises(ValueError, match="already simulated"):
        simulate(m, cfg)
    sim.restore()
    assert torch.equal(m(ids), ref)


@pytest.mark.parametrize(("wf", "af"), [("mxfp4", "mxfp8_e4m3"), ("nvfp4", "e4m3"),
                                        ("int4_g32", "int8"), ("e5m2", None)])
def test_fake_quant_linear_equals_quantized_operands(wf: str, af: str | None) -> None:
    torch.manual_seed(2)
    lin = nn.Linear(64, 24).double()
    x = torch.randn(5, 7, 64, dtype=torch.float64)
    with simulate(lin, LayerSpec(weight=wf, act=af)) as sm:
        y = sm(x).detach().numpy()
    w = lin.weight.detach().numpy()
    wq = np.asarray(formats.parse(wf).quantize(w))
    xs = x.numpy().reshape(-1, 64)
    if af is None:
        xq = xs
    elif af == "int8":  # per token, float32 scale amax / 127 (the 'auto' granularity)
        xq = np.asarray(formats.BlockScaled(formats.parse("int8"), formats.parse("float32"),
                                            64, scale_rule="nearest").quantize(xs))
    else:
        xq = np.asarray(formats.parse(af).quantize(xs))
    want = (xq @ wq.T + lin.bias.detach().numpy()).reshape(5, 7, 24)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    assert not np.array_equal(wq, w)


def test_bit_true_layer_equals_gemm() -> None:
    torch.manual_seed(3)
    lin = nn.Linear(64, 16)
    x = torch.randn(3, 64)
    acc = simulator.Accumulator("float16", chunk=32)
    with simulate(lin, LayerSpec(weight="mxfp4", act="e4m3", accumulator=acc)) as sm:
        y = sm(x)
    g = simulator.gemm(x.double().numpy(), lin.weight.detach().double().numpy().T,
                       a_format="e4m3", b_format="mxfp4", accumulator=acc)
    want = torch.from_numpy(g + lin.bias.detach().double().numpy()).float()
    assert torch.equal(y, want)


def test_kv_quantization_per_head() -> None:
    m = _model()
    ids = _ids()
    attn = m.layers[0].self_attn
    seen = {}
    h = attn.register_forward_pre_hook(lambda mod, args: seen.update(x=args[0]))
    with simulate(m, {"layers.0.self_attn": {"kv": "mxint8"}}):
        m(ids)
        k = attn.k_proj(seen["x"])
    h.remove()
    raw = nn.functional.linear(seen["x"], attn.k_proj.weight)
    hd = attn.head_dim
    want = fake_quant(raw.reshape(*raw.shape[:-1], -1, hd), "mxint8").reshape(raw.shape)
    assert torch.equal(k, want)


def test_gradients_flow_straight_through() -> None:
    torch.manual_seed(4)
    lin = nn.Linear(32, 8)
    x = torch.randn(4, 32, requires_grad=True)
    with simulate(lin, LayerSpec(weight="int4", act="e4m3")) as sm:
        sm(x).pow(2).sum().backward()
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0
    # straight-through: the gradient of x is W_q^T g, with the quantized weight
    x2 = x.detach().clone().requires_grad_(True)
    wq = fake_quant(lin.weight.detach(), "int4")
    y = nn.functional.linear(fake_quant(x2, "e4m3"), wq, lin.bias.detach())
    y.pow(2).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)


def test_conv_layers() -> None:
    torch.manual_seed(5)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 4))
    x = torch.randn(2, 3, 8, 8)
    ref = net(x)
    with simulate(net, {"0": {"weight": "int8", "act": "e4m3"}}) as sm:
        y = sm(x)
    conv = net[0]
    xq = fake_quant(x.movedim(1, -1), "e4m3").movedim(-1, 1)
    wq = fake_quant(conv.weight.reshape(8, -1), "int8").reshape(conv.weight.shape)
    want = net[3](net[2](net[1](nn.functional.conv2d(xq, wq, conv.bias))))
    torch.testing.assert_close(y, want, rtol=0, atol=0)
    assert not torch.equal(y, ref)


def test_rules_override_in_order() -> None:
    m = _model()
    sim = simulate(m, [("*", {"weight": "int8"}), ("layers.1.mlp.*", {"weight": "mxfp4",
                                                                      "act": "e4m3"})])
    try:
        assert sim.layers["layers.1.mlp.0"].weight == formats.parse("mxfp4")
        assert sim.layers["layers.1.mlp.0"].act == formats.parse("e4m3")
        assert sim.layers["layers.0.mlp.0"].weight == formats.parse("int8")
        assert sim.layers["head"].act is None
    finally:
        sim.restore()


def test_bad_input() -> None:
    m = _model()
    with pytest.raises(ValueError, match=r"pattern 'nope\.\*' matches no layer; layers: "
                                         r"layers\.0\.self_attn"):
        simulate(m, {"nope.*": {"weight": "int8"}})
    with pytest.raises(ValueError, match="weight: .*bogus"):
        LayerSpec(weight="bogus")
    with pytest.raises(ValueError, match="cannot take kv="):
        simulate(m, {"head": {"kv": "int8"}})
    with pytest.raises(ValueError, match="block formats define their own blocks"):
        LayerSpec(weight="mxfp4", granularity="channel")
    with pytest.raises(ValueError, match="granularity must be"):
        LayerSpec(weight="int4", granularity="row")
    with pytest.raises(TypeError, match="config must be"):
        simulate(m, 3)
    with pytest.raises(TypeError, match="model must be"):
        simulate("model", LayerSpec())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bit-true routing .* nn.Linear"):
        simulate(nn.Conv2d(1, 1, 1), LayerSpec(weight="int8", accumulator="float32"))
    assert "head" in layer_names(m)
    # a failed simulate leaves nothing patched
    assert not any(isinstance(x, simulator.torch.QuantLayer) for x in m.modules())
    restore(m)


def test_tile_weight_format() -> None:
    # 2-D tiles (8x8 blocks over out x K) quantize the weight as the format defines
    f = formats.BlockScaled(formats.parse("e4m3"), formats.parse("e8m0"), (8, 8))
    torch.manual_seed(6)
    lin = nn.Linear(32, 16)
    sim = simulate(lin, LayerSpec(weight=f))
    w = sim.quant_layers()[""].qweight().detach().numpy()
    sim.restore()
    want = np.asarray(f.quantize(lin.weight.detach().numpy()))
    np.testing.assert_array_equal(w, want)
    assert not np.array_equal(want, lin.weight.detach().numpy())


def test_per_tensor_weight_and_act_scales() -> None:
    # granularity 'tensor': one float32 scale amax / max for the whole weight / input
    torch.manual_seed(7)
    lin = nn.Linear(16, 4).double()
    x = torch.randn(3, 16, dtype=torch.float64)
    with simulate(lin, LayerSpec(weight="int8", granularity="tensor", act="int8",
                                 act_granularity="tensor")) as sm:
        y = sm(x).detach().numpy()
    w = lin.weight.detach().numpy()
    sw = np.float32(np.abs(w).max() / 127)
    sx = np.float32(np.abs(x.numpy()).max() / 127)
    wq = np.clip(np.rint(w / sw), -127, 127) * sw
    xq = np.clip(np.rint(x.numpy() / sx), -127, 127) * sx
    np.testing.assert_allclose(y, xq @ wq.T + lin.bias.detach().numpy(), rtol=1e-12,
                               atol=1e-12)
