"""Tiny checkpoints for tests of your-own-model evaluation, written offline: a random
Llama saved with ``save_pretrained`` (a word-level tokenizer trained on the corpus), and
a random Llama GGUF file written with the ``gguf`` package (a byte-level tokenizer)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

WORDS = ("the a format block scale rounding model layer token weight value error bit "
         "float integer sum product carry mantissa exponent").split()


def corpus(seed: int = 1, n: int = 4000) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _word_tokenizer(text: str, unk: str, **special: str) -> Any:
    """A word-level tokenizer trained on ``text`` (whitespace words), with ``unk`` and the
    ``special`` tokens (e.g. bos_token="<s>") first in its vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel(unk_token=unk))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.train_from_iterator([text], trainers.WordLevelTrainer(
        vocab_size=200, special_tokens=[unk, *special.values()]))
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token=unk, **special)


def save_llama(out: Path, text: str, layers: int = 2) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _word_tokenizer(text, "<unk>", bos_token="<s>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=256)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map (its byte-level BPE alphabet)."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def write_gguf(path: Path, seed: int = 0) -> Path:
    import gguf

    rng = np.random.default_rng(seed)
    v, d, f, layers, heads, kv = 258, 64, 128, 2, 4, 2
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(256)
    w.add_embedding_length(d)
    w.add_block_count(layers)
    w.add_feed_forward_length(f)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(d // heads)
    w.add_vocab_size(v)
    w.add_file_type(0)
    b2u = _bytes_to_unicode()
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list([b2u[b] for b in range(256)] + ["<s>", "</s>"])
    w.add_token_types([1] * 256 + [3, 3])
    w.add_token_merges([])
    w.add_token_scores([0.0] * v)
    w.add_bos_token_id(256)
    w.add_eos_token_id(257)

    def t(name: str, *shape: int, scale: float = 0.05) -> None:
        w.add_tensor(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    t("token_embd.weight", v, d, scale=1.0)
    for i in range(layers):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(d, np.float32))
        t(f"blk.{i}.attn_q.weight", d, d)
        t(f"blk.{i}.attn_k.weight", kv * d // heads, d)
        t(f"blk.{i}.attn_v.weight", kv * d // heads, d)
        t(f"blk.{i}.attn_output.weight", d, d)
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(d, np.float32))
        t(f"blk.{i}.ffn_gate.weight", f, d)
        t(f"blk.{i}.ffn_up.weight", f, d)
        t(f"blk.{i}.ffn_down.weight", d, f)
    w.add_tensor("output_norm.weight", np.ones(d, np.float32))
    t("output.weight", v, d)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def save_bert(out: Path, text: str) -> Path:
    """A tiny random BERT encoder (``BertModel``: loaded through AutoModel)."""
    from transformers import BertConfig, BertModel

    tok = _word_tokenizer(text, "[UNK]", pad_token="[PAD]")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2,
                     num_attention_heads=4, intermediate_size=128, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out
