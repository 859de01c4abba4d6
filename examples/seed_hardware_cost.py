"""The seed hardware against its conventional counterpart, synthesized with yosys
(xilinx LUTs without DSPs, cmos transistors) and per MAC:

* bipolar-INT bit-serial PE vs INT MACs of the same throughput;
* LUT Tensor Core PE (int4 weights x int8 activations) vs multiply-based MACs;
* MixPE shift-and-add (int8 x int4_g128, late dequantization) vs multiplier-based MACs
  with the dequantization done first (FloatMac on dequantized fp16 weights).

    .venv/bin/python examples/seed_hardware_cost.py
"""

from costmodel import energy_per_op, synthesize
from rtl import build

# (label, PE kind, options, MACs per cycle)
pairs = [
    ("bipolar int4 x int4, k=16 (bit-serial)", "BipolarPe", {"a": "int4", "b": "int4", "k": 16},
     16 / 17),
    ("IntMac int4 x int4 -> int16", "IntMac", {"a": "int4", "b": "int4", "acc_bits": 16}, 1),
    ("LUT PE int4 w x int8 x, 4x4 groups", "LutPe",
     {"w": "int4", "x": "int8", "group": 4, "groups": 4}, 16 / 6),
    ("IntMac int8 x int4 -> int24", "IntMac", {"a": "int8", "b": "int4", "acc_bits": 24}, 1),
    ("MixPE shift-add int8 x int4_g128, 8 lanes", "ShiftAddPe",
     {"x": "int8", "w": "int4_g128", "acc": "float32", "lanes": 8}, 8),
    ("FloatMac fp16 (dequantized) x e4m3 -> fp32", "FloatMac",
     {"a": "float16", "b": "e4m3fn", "acc": "float32"}, 1),
]
print(f"{'PE':46s} {'MAC/cyc':>7s} {'LUTs':>6s} {'LUTs/MAC':>8s} {'transistors/MAC':>15s} "
      f"{'pJ/MAC':>7s}")
for label, kind, opts, mpc in pairs:
    pe = build(kind, **opts)
    x = synthesize(pe, "xilinx")
    c = synthesize(pe, "cmos")
    e = energy_per_op(kind, **opts)
    print(f"{label:46s} {mpc:7.2f} {x.luts:6d} {x.luts / mpc:8.1f} "
          f"{(c.transistors or 0) / mpc:15.0f} {e / mpc:7.3f}")
