"""numfab --device: where quantize, eval and sweep compute (no GPU here: CUDA requests
are refused with the remedy, and the device code runs on a torch CPU device)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import formats
from numfab.cli import build_parser, main, quantize_array
from numfab.evaluate import EvalConfig, device_name, evaluate, resolve_device

#: the refusal of --device cuda where torch sees no GPU (CPU-only or CUDA build)
NO_CUDA = (r"numfab (quantize|eval|sweep): --device cuda: no CUDA device is visible to "
           r"torch \S+ \((a CPU-only build|built for CUDA \S+: check the driver and "
           r"CUDA_VISIBLE_DEVICES)\); install a CUDA build of torch \(the pip command for "
           r"your CUDA version is on https://pytorch\.org/get-started/locally/\) or use "
           r"--device cpu\n")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # one cache per test session (the CNN trains once), not the user's
    monkeypatch.setenv("NUMFAB_CACHE", str(tmp_path_factory.getbasetemp() / "numfab-cache"))


def _no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _gpu(monkeypatch: pytest.MonkeyPatch, count: int = 1, triton: bool = True) -> None:
    """torch sees ``count`` GPUs (only the questions resolve_device asks are answered)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (
        None if name == "triton" and not triton else real(name, *a)))


def test_device_option_on_quantize_eval_sweep() -> None:
    sub = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for cmd in ("quantize", "eval", "sweep"):
        text = sub[cmd].format_help()
        assert "--device DEVICE" in text and "auto (default: CUDA where torch sees a" in \
            " ".join(text.split()), cmd
        assert sub[cmd].parse_args([*(["x"] if cmd != "eval" else []),
                                    *(["--format", "e4m3"] if cmd == "quantize" else [])]
                                   ).device == "auto"


@pytest.mark.parametrize("cmd", ["quantize", "eval", "sweep"])
def test_cuda_without_a_gpu(cmd: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    _no_gpu(monkeypatch)
    np.save(tmp_path / "x.npy", np.ones(4, np.float32))
    (tmp_path / "s.toml").write_text('models = ["digits"]\nformats = ["int8"]\n')
    argv = {"quantize": ["quantize", str(tmp_path / "x.npy"), "--format", "e4m3", "-o",
                         str(tmp_path / "q.npy")],
            "eval": ["eval", "--model", "digits"],
            "sweep": ["sweep", str(tmp_path / "s.toml")]}[cmd]
    assert main([*argv, "--device", "cuda"]) == 2
    assert re.fullmatch(NO_CUDA, capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml", "x.npy"]  # nothing written


def test_bad_device_names(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("gpu", "cuda:", "CUDA", "cuda:-1", ""):
        with pytest.raises(SystemExit) as exc:
            main(["eval", "--model", "digits", "--device", bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert f"argument --device: must be auto, cpu, cuda or cuda:N, not {bad!r}" in err


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_gpu(monkeypatch)
    assert resolve_device("auto") == torch.device("cpu") == resolve_device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert device_name(torch.device("cpu")) == "cpu"
    with pytest.raises(ValueError, match=r"^device cuda:1: no CUDA device is visible"):
        resolve_device("cuda:1")
    with pytest.raises(ValueError, match=r"device must be auto, cpu, cuda or cuda:N, not "
                                         r"'mps'"):
        resolve_device("mps")
    with pytest.raises(TypeError, match=r"device must be 'auto', 'cpu', 'cuda' or 'cuda:N' "
                                        r"\(a str\), not 0"):
        resolve_device(0)  # type: ignore[arg-type]
    _gpu(monkeypatch, count=2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"--device cuda:2: torch sees 2 CUDA device\(s\), "
                                         r"numbered from 0"):
        resolve_device("cuda:2", "--device")
    _gpu(monkeypatch, triton=False)
    with pytest.raises(ModuleNotFoundError, match=r"--device cuda: formats' GPU kernels need "
                                                  r"Triton: pip install 'numfab\[gpu\]'"):
        resolve_device("auto", "--device")


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4", "uint4_g16_asym", "e4m3", "int8", "nf4"])
def test_quantize_on_a_torch_device_equals_numpy(fmt: str) -> None:
    # the device path of `numfab quantize` (array to the device, results back) on a CPU
    # torch device: the same values and facts as numpy's
    x = np.random.default_rng(1).standard_normal((6, 64)).astype(np.float32) * 100
    f = formats.parse(fmt)
    q0, facts0 = quantize_array(f, x)
    q1, facts1 = quantize_array(f, x, torch.device("cpu"))
    assert type(q1) is np.ndarray and q1.dtype == q0.dtype
    np.testing.assert_array_equal(q1, q0)
    assert facts1 == facts0 and int(facts0["saturated_elements"]) >= 0


def test_quantize_devices_print_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    _no_gpu(monkeypatch)
    x = np.random.default_rng(2).standard_normal((4, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    outs = []
    for extra in ([], ["--device", "cpu"], ["--device", "auto"]):
        assert main(["quantize", str(tmp_path / "x.npy"), "--format", "nvfp4", *extra]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1] == outs[2] and "blocks               8" in outs[0]


def test_eval_names_its_device(monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    _no_gpu(monkeypatch)
    assert main(["eval", "--model", "digits", "--weights", "int8", "--json",
                 "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["device"] == "cpu" and 0.9 < out["accuracy"] <= 1.0
    r = evaluate(EvalConfig("digits", weights="int8"), torch.device("cpu"))
    assert r == {k: v for k, v in out.items() if k not in ("seconds", "device")}
