"""numfab eval / sweep on your own model and text (numfab.lm): a tiny random Llama saved
with save_pretrained and a tiny GGUF file, both written here, offline."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from numfab import lm
from numfab.cli import main
from numfab.evaluate import EvalConfig, evaluate
from tests.numfab.own_models import corpus, save_bert, save_llama, write_gguf

SEQ = 32


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("own")
    text = corpus()
    (d / "corpus.txt").write_text(text)
    save_llama(d / "tiny", text)
    write_gguf(d / "tiny.gguf")
    return d


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMFAB_CACHE", str(tmp_path / "cache"))


def _linears(model: torch.nn.Module) -> dict[str, Any]:
    from simulator.torch import LayerSpec

    return {n: LayerSpec(weight="mxfp4", act="mxfp8_e4m3") for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and n != "lm_head"}


def test_perplexity_kl_top1_by_hand(own: Path) -> None:
    """GPTQ's convention written out (its eval loop: per window the mean cross-entropy
    times seq_len, exp of the sum over n * seq_len), and the exact KL divergence over the
    whole vocabulary (a word-level one, within TOP_K), against numfab eval's numbers."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from simulator.torch import simulate

    n = 5
    data = str(own / "corpus.txt")
    ref = evaluate(EvalConfig(str(own / "tiny"), data=data, seq_len=SEQ, windows=n), "cpu")
    got = evaluate(EvalConfig(str(own / "tiny"), data=data, seq_len=SEQ, windows=n,
                              weights="mxfp4", acts="mxfp8_e4m3"), "cpu")
    model = AutoModelForCausalLM.from_pretrained(own / "tiny", dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(own / "tiny")
    ids = tok((own / "corpus.txt").read_text(), return_tensors="pt").input_ids
    assert ids.numel() // SEQ >= n
    nlls, logps = [], []
    with torch.no_grad():
        for i in range(n):
            batch = ids[:, i * SEQ:(i + 1) * SEQ]
            logits = model(batch).logits
            loss = torch.nn.CrossEntropyLoss()(logits[0, :-1].float(), batch[0, 1:])
            nlls.append(float(loss) * SEQ)
            logps.append(torch.log_softmax(logits[0, :-1].double(), -1))
        ppl = math.exp(sum(nlls) / (n * SEQ))
        with simulate(model, _linears(model)):
            qlogps = [torch.log_softmax(model(ids[:, i * SEQ:(i + 1) * SEQ]).logits[0, :-1]
                                        .double(), -1) for i in range(n)]
    p = torch.cat(logps)
    q = torch.cat(qlogps)
    kl = float((p.exp() * (p - q)).sum(-1).mean())
    top1 = float((p.argmax(-1) == q.argmax(-1)).double().mean())
    assert ref["perplexity"] == pytest.approx(ppl, rel=1e-5)
    assert ref["reference_perplexity"] == pytest.approx(ppl, rel=1e-5)
    assert ref["kl"] == 0.0 and ref["top1_agreement"] == 1.0
    assert got["reference_perplexity"] == ref["perplexity"]
    assert got["kl_top_k"] == got["vocab"] == model.config.vocab_size <= lm.TOP_K
    assert got["kl"] == pytest.approx(kl, rel=1e-4, abs=1e-9) and got["kl"] > 0
    assert got["top1_agreement"] == pytest.approx(top1)
    assert got["perplexity"] != ref["perplexity"]
    assert (got["windows"], got["seq_len"]) == (n, SEQ)


def test_gguf_model(own: Path) -> None:
    """A GGUF file: its dequantized weights are the reference; quantizing them moves the
    perplexity; the KL divergence is over the top TOP_K of 258 tokens (not exact)."""
    data = str(own / "corpus.txt")
    ref = evaluate(EvalConfig(str(own / "tiny.gguf"), data=data, seq_len=64, windows=2),
                   "cpu")
    got = evaluate(EvalConfig(str(own / "tiny.gguf"), data=data, seq_len=64, windows=2,
                              weights="mxfp4"), "cpu")
    assert math.isfinite(ref["perplexity"]) and ref["perplexity"] > 1
    assert ref["kl"] == 0.0
    assert got["perplexity"] != ref["perplexity"] and got["kl"] > 0
    assert got["kl_top_k"] == lm.TOP_K < got["vocab"] == 258


def test_sweep_reference_once_resume_and_failures(own: Path, tmp_path: Path) -> None:
    """A sweep on the tiny model: the reference pass runs once for all its points
    (counted in each record); a point that fails (a rules pattern matching no layer) is
    recorded beside the results, not in them, listed by the report, and retried by a
    rerun; a changed rules file makes it another sweep (refused on this results file)."""
    from numfab.report import write_report
    from numfab.sweep import PointsFailed, load_sweep, read_failures, read_results, run_sweep

    bad = tmp_path / "bad.toml"
    bad.write_text('["model.layers.9.*"]\nweight = "int8"\n')
    good = tmp_path / "good.toml"
    good.write_text('["model.layers.0.mlp.*"]\nweight = "mxfp4"\n')
    sw = tmp_path / "s.toml"
    sw.write_text(f'models = ["{own / "tiny"}"]\nformats = ["mxfp4", "int8"]\n'
                  f'quantize = ["weights"]\ndata = "{own / "corpus.txt"}"\nseq_len = {SEQ}\n'
                  f'windows = 3\nrules = ["{good}", "{bad}"]\n')
    out = tmp_path / "s.jsonl"
    with pytest.raises(PointsFailed, match="1 point"):
        run_sweep(load_sweep(sw), out, progress=False, device="cpu")
    _, recs = read_results(out)
    assert len(recs) == 4  # reference, mxfp4, int8, good rules
    # every window of the reference computed once, for all the points
    assert sum(r["metrics"]["reference_windows"] for r in recs.values()) == 3
    failed = read_failures(out)
    assert len(failed) == 1 and "matches no layer" in failed[0]["error"]
    assert failed[0]["key"] not in recs
    rep = write_report(out, tmp_path / "rep")
    assert "Failed points" in rep.read_text() and "bad.toml" in rep.read_text()
    before = out.read_bytes()
    # a rerun retries only the failed point (one worker: --jobs auto without a GPU)
    with pytest.raises(PointsFailed, match="1 point"):
        run_sweep(load_sweep(sw), out, progress=False, device="cpu", jobs="auto")
    assert out.read_bytes() == before and len(read_failures(out)) == 1
    # a file the sweep names changed: another sweep (its content is in the config hash)
    bad.write_text('["model.layers.1.*"]\nweight = "int8"\n')
    with pytest.raises(ValueError, match="different sweep configuration"):
        run_sweep(load_sweep(sw), out, progress=False, device="cpu")
    assert out.read_bytes() == before


def test_rules_reach_only_their_layers(own: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import simulator.torch as st

    seen: dict[str, Any] = {}
    real = st.simulate

    def spy(model: torch.nn.Module, config: Any) -> Any:
        sim = real(model, config)
        seen.update(sim.layers)
        return sim

    monkeypatch.setattr(st, "simulate", spy)
    rules = tmp_path / "r.toml"
    rules.write_text('["model.layers.0.mlp.*"]\nweight = "mxfp4"\nact = "mxfp8_e4m3"\n\n'
                     '["re:model\\\\.layers\\\\.1\\\\.self_attn\\\\.(q|k)_proj"]\n'
                     'weight = "int8"\ngranularity = "channel"\n')
    res = evaluate(EvalConfig(str(own / "tiny"), data=str(own / "corpus.txt"), seq_len=SEQ,
                              windows=2, rules=str(rules)), "cpu")
    assert set(seen) == {"model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj",
                         "model.layers.0.mlp.down_proj", "model.layers.1.self_attn.q_proj",
                         "model.layers.1.self_attn.k_proj"}
    assert str(seen["model.layers.1.self_attn.k_proj"].weight) == "int8"
    assert res["kl"] > 0 and "bits_weights" not in res
    seen.clear()
    evaluate(EvalConfig(str(own / "tiny"), data=str(own / "corpus.txt"), seq_len=SEQ,
                        windows=2, weights="int8"), "cpu")
    assert "lm_head" not in seen and len(seen) == 14  # every Linear but the output head


def test_corpus_readers(tmp_path: Path) -> None:
    d = tmp_path / "docs"
    (d / "b").mkdir(parents=True)
    (d / "b" / "2.txt").write_text("second")
    (d / "1.txt").write_text("first")
    (d / ".hidden").write_text("never")
    assert lm.read_corpus(d) == "first\n\nsecond"
    j = tmp_path / "c.jsonl"
    j.write_text(json.dumps({"body": "one"}) + "\n\n" + json.dumps({"body": "two"}) + "\n")
    assert lm.read_corpus(j, "body") == "one\n\ntwo"
    with pytest.raises(ValueError, match="no text field 'text'.*body"):
        lm.read_corpus(j)
    ids = torch.arange(10)
    assert lm.windows(ids, 3, None).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert lm.windows(ids, 3, 1, skip=2).tolist() == [[6, 7, 8]]


def _err(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    rc = main(["eval", "--device", "cpu", *argv])
    err = capsys.readouterr().err
    assert rc != 0, err
    return err


def test_bad_input(own: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(own / "corpus.txt")
    tiny = str(own / "tiny")
    assert "no such file or directory" in _err(capsys, "--model", str(tmp_path / "nope"))
    assert "unknown model 'llama-3-8b'" in _err(capsys, "--model", "llama-3-8b")
    assert "no config.json" in _err(capsys, "--model", str(tmp_path))
    (tmp_path / "w.bin").write_bytes(b"xx")
    assert "must be a GGUF file" in _err(capsys, "--model", str(tmp_path / "w.bin"))
    (tmp_path / "fake.gguf").write_bytes(b"nope")
    assert "no GGUF magic" in _err(capsys, "--model", str(tmp_path / "fake.gguf"))
    bare = tmp_path / "bare"
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tiny).save_pretrained(bare)
    assert "no usable tokenizer" in _err(capsys, "--model", str(bare), "--data", data)
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    assert "--data" in _err(capsys, "--model", tiny, "--data", str(empty))
    short = tmp_path / "short.txt"
    short.write_text("the a format")
    assert "fewer than one window" in _err(capsys, "--model", tiny, "--data", str(short),
                                           "--seq-len", "64")
    assert "--windows 999" in _err(capsys, "--model", tiny, "--data", data, "--seq-len",
                                   "64", "--windows", "999")
    assert "--seq-len" in _err(capsys, "--model", tiny, "--data", data, "--seq-len", "4096")
    rules = tmp_path / "r.toml"
    rules.write_text('["model.layers.9.*"]\nweight = "int8"\n')
    assert "matches no layer" in _err(capsys, "--model", tiny, "--data", data, "--seq-len",
                                      "32", "--config", str(rules))
    assert "leave weights" in _err(capsys, "--model", tiny, "--config", str(rules),
                                   "--weights", "int8")
    rules.write_text('["*"]\nweight = "int9x"\n')
    assert "int9x" in _err(capsys, "--model", tiny, "--config", str(rules))
    assert "--data" in _err(capsys, "--model", tiny, "--data", str(tmp_path / "none.txt"))


def test_print_layers(own: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--model", str(own / "tiny"), "--print-layers"]) == 0
    out = capsys.readouterr().out
    assert "model.layers.1.mlp.down_proj" in out and "64x128" in out and "lm_head" in out


def test_encoder_hidden_state_cosine(own: Path, tmp_path: Path) -> None:
    """An encoder (BertModel, through AutoModel): the cosine of its last hidden states
    to the unquantized ones, per token and per mean-pooled window, computed by hand."""
    from transformers import AutoModel, AutoTokenizer

    from simulator.torch import simulate

    bert = save_bert(tmp_path / "bert", (own / "corpus.txt").read_text())
    data = str(own / "corpus.txt")
    ref = evaluate(EvalConfig(str(bert), data=data, windows=3), "cpu")
    got = evaluate(EvalConfig(str(bert), data=data, windows=3, weights="mxfp4"), "cpu")
    assert ref["cosine"] == pytest.approx(1.0) and ref["seq_len"] == 128
    m = AutoModel.from_pretrained(bert).eval()
    ids = AutoTokenizer.from_pretrained(bert)((own / "corpus.txt").read_text(),
                                             return_tensors="pt").input_ids
    cos, emb = [], []
    with torch.no_grad():
        hs = [m(input_ids=ids[:, i * 128:(i + 1) * 128]).last_hidden_state[0]
              for i in range(3)]
        from simulator.torch import LayerSpec

        rules = {n: LayerSpec(weight="mxfp4") for n, mod in m.named_modules()
                 if isinstance(mod, torch.nn.Linear)}
        with simulate(m, rules):
            qs = [m(input_ids=ids[:, i * 128:(i + 1) * 128]).last_hidden_state[0]
                  for i in range(3)]
    for h, q in zip(hs, qs, strict=True):
        cos.append(float(torch.nn.functional.cosine_similarity(h, q, dim=-1).mean()))
        emb.append(float(torch.nn.functional.cosine_similarity(h.mean(0), q.mean(0), dim=0)))
    assert got["cosine"] == pytest.approx(sum(cos) / 3, rel=1e-6) and got["cosine"] < 1
    assert got["embedding_cosine"] == pytest.approx(sum(emb) / 3, rel=1e-6)


def test_old_keys_still_match() -> None:
    """A point's key leaves the your-own-model fields out at their defaults: results
    written before they existed (keys of the old fields only) still resume."""
    old_fields = ("model", "weights", "acts", "kv", "hadamard", "gptq", "tokens", "block")
    c = EvalConfig("digits", weights="int8")
    old_key = "|".join(f"{k}={getattr(c, k)}" for k in old_fields)
    assert c.key() == old_key
    assert EvalConfig("smollm2", dtype="bfloat16").key() == \
        "|".join(f"{k}={getattr(EvalConfig('smollm2'), k)}" for k in old_fields) \
        + "|dtype=bfloat16"


def test_report_plots_of_a_model_path(own: Path, tmp_path: Path) -> None:
    """Plots of a model given as a path are named inside the report folder (its last
    part and a hash), never beside the model."""
    from numfab.report import _file_stem

    stem = _file_stem(str(own / "tiny"))
    assert "/" not in stem and stem.startswith("tiny-")
    assert _file_stem("smollm2") == "smollm2"
    assert _file_stem("/a/tiny") != _file_stem("/b/tiny")


def test_reference_shards_shared_by_concurrent_workers(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers asking for one reference at once compute different shards side by
    side (each window once, both working), and both get the whole reference, in window
    order; a damaged shard is computed again."""
    import threading
    import time as _time

    from numfab.models import Loaded

    monkeypatch.setenv("NUMFAB_CACHE", str(tmp_path))
    monkeypatch.setattr(lm, "SHARD", 2)
    done: list[tuple[str, int]] = []

    def fake(loaded: Loaded, wins: torch.Tensor, device: torch.device
             ) -> dict[str, torch.Tensor]:
        _time.sleep(0.2)
        done.extend((threading.current_thread().name, int(w[0])) for w in wins)
        return {"nll": wins[:, 0].double(), "vocab": torch.tensor(7)}

    monkeypatch.setattr(lm, "_reference", fake)
    wins = torch.arange(8)[:, None].repeat(1, 4)
    loaded = Loaded("x", "causal-lm", torch.nn.Identity(), None)
    got: dict[str, dict[str, torch.Tensor]] = {}

    def work() -> None:
        got[threading.current_thread().name] = lm.reference(loaded, wins, torch.device("cpu"),
                                                            "k")

    ts = [threading.Thread(target=work, name=f"w{i}") for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(w for _, w in done) == list(range(8))  # each window once
    assert {name for name, _ in done} == {"w0", "w1"}  # side by side
    for ref in got.values():
        assert ref["nll"].tolist() == list(range(8)) and int(ref["vocab"]) == 7
    (tmp_path / "reference" / "k" / "shard2" / "00001.pt").write_bytes(b"damaged")
    done.clear()
    again = lm.reference(loaded, wins, torch.device("cpu"), "k")
    assert sorted(w for _, w in done) == [2, 3] and again["nll"].tolist() == list(range(8))


def _device_when_both_started(d: str) -> str:
    """A pinned worker's device, once two workers run this at once (a worker blocked
    here takes no other task: each of two such tasks runs on its own worker)."""
    import time as _time

    from numfab import sweep

    Path(d, str(os.getpid())).touch()
    end = _time.monotonic() + 120
    while len(os.listdir(d)) < 2 and _time.monotonic() < end:
        _time.sleep(0.05)
    return sweep._worker_device()


def test_pinned_workers_each_hold_one_device(tmp_path: Path) -> None:
    """--jobs auto on several GPUs: each spawned worker takes its own device (both used,
    none twice)."""
    import contextlib
    import multiprocessing

    from numfab import sweep

    with contextlib.ExitStack() as stack:
        pool = sweep._pinned_pool(multiprocessing.get_context("spawn"), ["gpu-a", "gpu-b"],
                                  None, stack)
        with pool:
            got = [pool.submit(_device_when_both_started, str(tmp_path)) for _ in range(2)]
            seen = sorted(f.result() for f in got)
    assert seen == ["gpu-a", "gpu-b"]
