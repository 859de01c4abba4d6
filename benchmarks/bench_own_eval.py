"""Issue 18 on GPUs: your own model through ``numfab eval`` / ``numfab sweep``.

Builds a Llama with 8B-parameter shapes and random bfloat16 weights (no download) as a
Hugging Face checkpoint directory (``save_pretrained``; a word-level tokenizer trained on
a generated corpus, so the text is the model's own tokens), then:

- ``eval``: ``numfab eval --device cuda --dtype bfloat16`` on ``--windows`` windows of 2048
  tokens, unquantized and (twice: Triton compiles on the first) with MXFP4 weights +
  MXFP8 activations: tokens/s, peak GPU memory;
- ``sweep``: the same 8-point sweep with ``--jobs 1`` and ``--jobs auto`` (one worker per
  GPU) on a machine with several GPUs: wall time of each and the speed-up.

    python benchmarks/bench_own_eval.py [eval] [sweep] [--dir DIR] [--layers 32]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import torch

WORDS = [f"w{i}" for i in range(5000)]


def build(d: Path, layers: int, windows: int) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    rng = random.Random(0)
    text = " ".join(rng.choice(WORDS) for _ in range((windows + 4) * 2048))
    d.mkdir(parents=True, exist_ok=True)
    corpus = d.parent / "corpus.txt"
    if not corpus.exists() or corpus.stat().st_size < len(text):
        corpus.write_text(text)  # the same words (seed 0), longer
    if (d / "config.json").exists():
        return
    tk = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.train_from_iterator([text], trainers.WordLevelTrainer(
        vocab_size=len(WORDS) + 2, special_tokens=["<unk>", "<s>"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>")
    cfg = LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                      num_hidden_layers=layers, num_attention_heads=32, num_key_value_heads=8,
                      max_position_embeddings=8192)
    torch.manual_seed(0)
    with torch.device("cuda"):
        torch.set_default_dtype(torch.bfloat16)
        m = LlamaForCausalLM(cfg)
        torch.set_default_dtype(torch.float32)
    for p in m.parameters():
        p.data.normal_(0, 0.02)
    m.save_pretrained(d)
    tok.save_pretrained(d)
    del m
    torch.cuda.empty_cache()


def run_eval(d: Path, windows: int) -> None:
    from numfab.cli import main

    corpus = str(d.parent / "corpus.txt")
    q = ["--weights", "mxfp4", "--acts", "mxfp8_e4m3"]
    # the quantized run twice: the first compiles Triton's kernels (a fresh machine has
    # no kernel cache), the second is the steady state
    for extra in ([], q, q):
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        rc = main(["eval", "--model", str(d), "--data", corpus, "--seq-len", "2048",
                   "--windows", str(windows), "--dtype", "bfloat16", "--device", "cuda",
                   "--json", *extra])
        print(f"eval {' '.join(extra) or '(reference)'}: rc {rc}, "
              f"{time.perf_counter() - t0:.1f} s wall, peak GPU memory "
              f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB", flush=True)


def run_sweep(d: Path, windows: int) -> None:
    from numfab.cli import main
    from numfab.lm import content_hash

    def sweep_file(n: int) -> Path:
        sw = d.parent / f"sweep{n}.toml"
        sw.write_text(f'models = ["{d}"]\nformats = ["mxfp4", "mxfp8_e4m3", "nvfp4", "int8", '
                      f'"mxfp6_e3m2", "float8_e4m3fn", "int4_g128"]\n'
                      f'quantize = ["weights"]\ndata = "{d.parent / "corpus.txt"}"\n'
                      f'seq_len = 2048\nwindows = {n}\ndtype = "bfloat16"\n')
        return sw

    # untimed warm-up: the checkpoint's content hash (remembered) and every format's
    # Triton kernels (compiled once into Triton's disk cache), so neither timed run pays
    # them
    t0 = time.perf_counter()
    content_hash(d)
    os.environ["NUMFAB_REFERENCE_SALT"] = f"warm-{time.time()}"
    out = d.parent / "sweep_warm.jsonl"
    out.unlink(missing_ok=True)
    main(["sweep", str(sweep_file(1)), "-o", str(out), "--jobs", "1", "--device", "cuda",
          "--quiet"])
    print(f"warm-up (hash, kernels): {time.perf_counter() - t0:.1f} s", flush=True)
    sw = sweep_file(windows)
    times = {}
    for jobs in ("1", "auto"):
        # each run computes its own reference pass (a salted reference cache)
        os.environ["NUMFAB_REFERENCE_SALT"] = f"bench-{jobs}-{time.time()}"
        out = d.parent / f"sweep_{jobs}.jsonl"
        out.unlink(missing_ok=True)
        t0 = time.perf_counter()
        rc = main(["sweep", str(sw), "-o", str(out), "--jobs", jobs, "--device", "cuda",
                   "--quiet"])
        times[jobs] = time.perf_counter() - t0
        recs = [json.loads(x) for x in out.read_text().splitlines()[1:]]
        print(f"sweep --jobs {jobs}: rc {rc}, {len(recs)} points, {times[jobs]:.1f} s, "
              f"devices {sorted({r['device'] for r in recs})}", flush=True)
        for r in recs:
            m = r["metrics"]
            print(f"  {r['key'][:60]:60s} {r['seconds']:7.1f} s  reference windows "
                  f"{m.get('reference_windows')}  {m.get('tokens_per_s', 0):9.0f} tok/s",
                  flush=True)
    print(f"speed-up --jobs auto ({torch.cuda.device_count()} GPUs) vs 1: "
          f"{times['1'] / times['auto']:.2f}x", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="*", default=["eval"], choices=("eval", "sweep"))
    ap.add_argument("--dir", default="/tmp/numfab-llama8b/model")
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--windows", type=int, default=16, help="windows of the eval runs")
    ap.add_argument("--sweep-windows", type=int, default=256,
                    help="windows of each sweep point (long enough that loading the model "
                    "once per worker does not dominate)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device")
        return 2
    print(f"device: {torch.cuda.get_device_name()} x {torch.cuda.device_count()}", flush=True)
    d = Path(args.dir)
    t0 = time.perf_counter()
    build(d, args.layers, max(args.windows, args.sweep_windows))
    print(f"checkpoint ready in {time.perf_counter() - t0:.1f} s", flush=True)
    if "eval" in args.what:
        run_eval(d, args.windows)
    if "sweep" in args.what:
        run_sweep(d, args.sweep_windows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
