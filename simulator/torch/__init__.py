"""Run any torch model in any numfab format: ``simulate(model, config)``.

Rules keyed by layer-name patterns choose, per layer, the format of the weights, the
input activations, the output and (for attention modules) the KV cache, and whether the
layer runs as fake quantization (default: formats/ kernels on float32, straight-through
gradients) or bit-true through :func:`simulator.gemm` with a modelled accumulator.

Matched ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` layers are swapped for a
:class:`QuantLayer` wrapping the original module (its parameters untouched, so restoring
puts back the very same objects: the model is restored bit for bit). Attention modules
(children ``k_proj``/``v_proj`` as in Hugging Face Llama, or ``key``/``value`` as in
BERT) matched by a rule with ``kv=`` get their key and value projections' outputs
quantized along the head dimension: the tensors the KV cache stores (for Llama, keys
before the rotary embedding, as KVQuant's pre-RoPE key quantization).

A model runs where its parameters lie: on a CUDA device every quantization (weights,
activations, KV cache, and the Hadamard, SmoothQuant, GPTQ and MSE-clip transforms)
runs on that device, quantized weights are cached there, and only the bit-true route
copies operands to the host (simulator.gemm's kernels run there). Inputs and
calibration batches on another device than the model are refused. Each quantization is
the torch custom op ``numfab::fake_quant``, so a simulated model runs under
``torch.compile`` and CUDA graphs.

Modules by responsibility: :mod:`.spec` (LayerSpec), :mod:`.rules` (patterns to specs),
:mod:`.quantize` (fake quantization), :mod:`.layers` (the patched modules),
:mod:`.calibration`, :mod:`.folding` (SmoothQuant into norms), :mod:`.simulation`
(patching and restoring).
"""

from .folding import restore_params
from .layers import QuantLayer, layer_names
from .quantize import fake_quant
from .simulation import Simulation, restore, simulate
from .spec import LayerSpec

__all__ = ["LayerSpec", "QuantLayer", "Simulation", "fake_quant", "layer_names",
           "restore", "restore_params", "simulate"]
