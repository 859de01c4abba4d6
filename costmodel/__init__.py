"""numfab.costmodel: hardware cost of the rtl/ processing elements.

``synthesize(component, target)`` runs Debian's yosys and returns the resources;
``estimate(pe, target=, **formats)`` is the analytic component model fitted to the
calibration syntheses (``costmodel/data/calibration.csv``, ``numfab cost calibrate``;
``refit()`` after rewriting it);
``energy_per_op`` scales Horowitz's 45 nm figures through the same components;
``gemm_cost`` runs a GEMM on an array of PEs; ``pareto_front`` marks accuracy x cost
fronts.
"""

from .energy import DRAM_PJ_PER_BYTE, HOROWITZ_PJ, SRAM_PJ_PER_BYTE, energy_per_op
from .estimate import Estimate, estimate, fit_quality, refit
from .features import features
from .gemm import GemmCost, gemm_cost, operand_bits, pe_for
from .pareto import format_cost, pareto_front
from .synth import TARGETS, Resources, YosysMissing, synthesize

__all__ = ["DRAM_PJ_PER_BYTE", "Estimate", "GemmCost", "HOROWITZ_PJ", "Resources",
           "SRAM_PJ_PER_BYTE", "TARGETS", "YosysMissing", "energy_per_op", "estimate",
           "features", "fit_quality", "format_cost", "gemm_cost", "operand_bits",
           "pareto_front", "pe_for", "refit", "synthesize"]
