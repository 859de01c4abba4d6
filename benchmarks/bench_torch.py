"""Fake-quantization overhead of simulator.torch on a transformer forward.

A Llama-architecture model with SmolLM2-135M's shapes (hidden 576, 30 layers, 9 heads /
3 KV heads, MLP 1536, vocab 49152; random weights, float32), one sequence of 1024 tokens:
the unquantized forward against the same model under ``simulate`` with MXFP4 weights and
MXFP8 (E4M3) activations on every Linear layer. The quantized weights are cached after
the first call (timed apart). Prints seconds and the ratio.

    .venv/bin/python benchmarks/bench_torch.py [--tokens 1024] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch import nn

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _timing import best_time, tuned  # noqa: E402


class Attention(nn.Module):
    def __init__(self, d: int, heads: int, kv_heads: int) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, d // heads
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        rep = self.heads // self.kv_heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, d))


class Mlp(nn.Module):
    def __init__(self, d: int, f: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(d, f, bias=False)
        self.up_proj = nn.Linear(d, f, bias=False)
        self.down_proj = nn.Linear(f, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, d: int, f: int, heads: int, kv_heads: int) -> None:
        super().__init__()
        self.input_layernorm = nn.RMSNorm(d)
        self.self_attn = Attention(d, heads, kv_heads)
        self.post_attention_layernorm = nn.RMSNorm(d)
        self.mlp = Mlp(d, f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, vocab: int = 49152, d: int = 576, f: int = 1536, n: int = 30,
                 heads: int = 9, kv_heads: int = 3) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(Layer(d, f, heads, kv_heads) for _ in range(n))
        self.norm = nn.RMSNorm(d)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x) @ self.embed_tokens.weight.T  # tied head, as SmolLM2


def main() -> None:
    tuned()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=1024)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    from simulator.torch import LayerSpec, simulate

    torch.manual_seed(0)
    model = Llama().eval()
    ids = torch.randint(0, 49152, (1, args.tokens))
    with torch.no_grad():
        base = best_time(lambda: model(ids), args.repeat)
        sim = simulate(model, {"layers.*": LayerSpec(weight="mxfp4", act="mxfp8_e4m3")})
        t0 = time.perf_counter()
        sim(ids)
        first = time.perf_counter() - t0
        quant = best_time(lambda: sim(ids), args.repeat)
        sim.restore()
    n = sum(1 for _ in sim.layers)
    print(f"Llama 576x30 (SmolLM2-135M shapes), {args.tokens} tokens, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, {n} Linear layers")
    print(f"unquantized forward          {base:7.3f} s")
    print(f"MXFP4 weights + MXFP8 acts   {quant:7.3f} s  ({quant / base:.2f}x)")
    print(f"first call (weights quantized) {first:5.3f} s")


if __name__ == "__main__":
    main()
