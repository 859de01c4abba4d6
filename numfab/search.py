"""Co-design search (issue 20): per-layer formats under a hardware budget.

The search is an integer program: each layer takes exactly one candidate datapath
(weight format, activation format, accumulator); the objective is the sum of per-layer
sensitivities (the accuracy loss each choice causes), the constraints are budgets on
summed per-layer costs (energy per token, weight bytes, PE area), layers tied to one
choice (q/k/v of one attention, gate/up of one MLP) and pinned layers. It is solved
exactly by HiGHS through :func:`scipy.optimize.milp`.

This module holds the solver, the budget sweep (the accuracy-versus-cost front) and the
cost tables (one :func:`costmodel.gemm_cost` per layer and candidate: the price of the
exact datapath the format needs).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["COSTS", "RESULTS_KIND", "Candidate", "SearchResult", "Solution", "brute_force",
           "budget_range", "fisher_sensitivity", "front", "group_costs", "layer_costs",
           "layer_groups", "measure", "measured_sensitivity", "rules_for", "rules_toml",
           "search", "solve"]

#: the cost keys of :func:`layer_costs` (what a budget may bound)
COSTS = ("energy", "bytes", "area")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One choice of datapath for a layer: weight format, activation format (None:
    bfloat16 activations) and accumulator (text of :class:`simulator.Accumulator`)."""

    name: str
    weight: str
    act: str | None = None
    accumulator: str = "float32"

    def datapath(self) -> Any:
        """The :class:`simulator.Datapath` a layer in this candidate computes (a: the
        activations, b: the weights)."""
        from simulator import Accumulator, Datapath

        return Datapath(self.act or "bfloat16", self.weight, Accumulator.parse(self.accumulator))


@dataclasses.dataclass(frozen=True)
class Solution:
    """A chosen candidate index per layer, its summed sensitivity and summed costs."""

    choice: tuple[int, ...]
    objective: float
    totals: dict[str, float]


def _arrays(sensitivity: Any, costs: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    s = np.asarray(sensitivity, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] < 1 or s.shape[1] < 1:
        raise ValueError(f"sensitivity must be a (layers, candidates) array, not shape "
                         f"{s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("sensitivity must be finite (a candidate that cannot run a layer: "
                         "leave it out, or pin the layer)")
    out = {}
    for key, v in costs.items():
        a = np.asarray(v, dtype=np.float64)
        if a.shape != s.shape:
            raise ValueError(f"cost {key!r} has shape {a.shape}; sensitivity has {s.shape}")
        if not np.isfinite(a).all() or (a < 0).any():
            raise ValueError(f"cost {key!r} must be finite and non-negative")
        out[key] = a
    return s, out


def _groups(L: int, C: int, ties: Sequence[Sequence[int]], pins: Mapping[int, int]
            ) -> tuple[list[list[int]], dict[int, int]]:
    """Layers merged by ties into groups (each layer in one), and each group's pinned
    candidate."""
    parent = list(range(L))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for g in ties:
        idx = list(g)
        for i in idx:
            if not isinstance(i, (int, np.integer)) or not 0 <= int(i) < L:
                raise ValueError(f"tied layer {i!r} is not a layer index in 0..{L - 1}")
        for i in idx[1:]:
            parent[find(int(i))] = find(int(idx[0]))
    roots: dict[int, list[int]] = {}
    for i in range(L):
        roots.setdefault(find(i), []).append(i)
    groups = list(roots.values())
    where = {i: gi for gi, g in enumerate(groups) for i in g}
    gpins: dict[int, int] = {}
    for layer, c in pins.items():
        if not 0 <= int(layer) < L:
            raise ValueError(f"pinned layer {layer!r} is not a layer index in 0..{L - 1}")
        if not 0 <= int(c) < C:
            raise ValueError(f"layer {layer} is pinned to candidate {c!r}, not one of "
                             f"0..{C - 1}")
        gi = where[int(layer)]
        if gpins.get(gi, int(c)) != int(c):
            raise ValueError(f"layers {sorted(groups[gi])} are tied but pinned to different "
                             f"candidates ({gpins[gi]} and {c})")
        gpins[gi] = int(c)
    return groups, gpins


def budget_range(costs: Mapping[str, Any], key: str, *, ties: Sequence[Sequence[int]] = (),
                 pins: Mapping[int, int] | None = None) -> tuple[float, float]:
    """(cheapest, most expensive) total of cost ``key`` over the assignments the ties and
    pins allow (each group picks its cheapest / dearest candidate)."""
    if key not in costs:
        raise ValueError(f"no cost {key!r}; costs: {', '.join(costs)}")
    a = np.asarray(costs[key], dtype=np.float64)
    groups, gpins = _groups(a.shape[0], a.shape[1], ties, pins or {})
    lo = hi = 0.0
    for gi, g in enumerate(groups):
        per = a[g].sum(axis=0)
        if gi in gpins:
            lo += per[gpins[gi]]
            hi += per[gpins[gi]]
        else:
            lo += per.min()
            hi += per.max()
    return float(lo), float(hi)


def solve(sensitivity: Any, costs: Mapping[str, Any], budget: Mapping[str, float], *,
          ties: Sequence[Sequence[int]] = (), pins: Mapping[int, int] | None = None
          ) -> Solution:
    """The assignment of one candidate per layer minimizing the summed sensitivity with
    every budgeted cost's total at most its budget (HiGHS, exact).

    sensitivity, costs[key] : (layers, candidates) arrays; budget : cost key -> bound;
    ties : groups of layer indices that take one candidate; pins : layer -> candidate.

    Raises ValueError for a budget key without a cost, a budget below the cheapest or
    above the most expensive total the ties and pins allow (naming the range), shapes
    that disagree, and infeasible combinations of budgets.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp

    s, cs = _arrays(sensitivity, costs)
    L, C = s.shape
    pins = dict(pins or {})
    groups, gpins = _groups(L, C, ties, pins)
    for key, b in budget.items():
        if key not in cs:
            raise ValueError(f"budget {key!r} has no cost table; costs: {', '.join(cs)}")
        if not isinstance(b, (int, float)) or isinstance(b, bool) or not math.isfinite(b):
            raise ValueError(f"budget {key}={b!r} must be a finite number")
        lo, hi = budget_range(cs, key, ties=ties, pins=pins)
        if b < lo * (1 - 1e-12):
            raise ValueError(f"budget {key}={b:g} is below the cheapest assignment "
                             f"({lo:g}); the range is {lo:g}..{hi:g}")
        if b > hi * (1 + 1e-12):
            raise ValueError(f"budget {key}={b:g} is above the most expensive assignment "
                             f"({hi:g}): it constrains nothing; the range is {lo:g}..{hi:g}")
    G = len(groups)
    # one binary per (group, candidate): a group's layers share its choice
    obj = np.array([[s[g, c].sum() for c in range(C)] for g in groups]).ravel()
    rows = []
    for gi in range(G):
        r = np.zeros(G * C)
        r[gi * C:(gi + 1) * C] = 1.0
        rows.append(r)
    cons = [LinearConstraint(np.array(rows), 1.0, 1.0)]
    for key, b in budget.items():
        a = cs[key]
        coef = np.array([[a[g, c].sum() for c in range(C)] for g in groups]).ravel()
        cons.append(LinearConstraint(coef[None, :], -np.inf, float(b) * (1 + 1e-12)))
    lb = np.zeros(G * C)
    ub = np.ones(G * C)
    for gi, c in gpins.items():
        ub[gi * C:(gi + 1) * C] = 0.0
        ub[gi * C + c] = 1.0
        lb[gi * C + c] = 1.0
    res = milp(obj, constraints=cons, integrality=np.ones(G * C), bounds=Bounds(lb, ub))
    if res.status != 0 or res.x is None:
        raise ValueError(f"no assignment meets every budget together ({dict(budget)}): "
                         f"{res.message}")
    pick = res.x.reshape(G, C).argmax(axis=1)
    choice = [0] * L
    for gi, g in enumerate(groups):
        for i in g:
            choice[i] = int(pick[gi])
    return _solution(tuple(choice), s, cs)


def _solution(choice: tuple[int, ...], s: np.ndarray, cs: dict[str, np.ndarray]) -> Solution:
    idx = np.arange(len(choice))
    ch = np.array(choice)
    return Solution(choice, float(s[idx, ch].sum()),
                    {k: float(v[idx, ch].sum()) for k, v in cs.items()})


def brute_force(sensitivity: Any, costs: Mapping[str, Any], budget: Mapping[str, float], *,
                ties: Sequence[Sequence[int]] = (), pins: Mapping[int, int] | None = None
                ) -> Solution:
    """:func:`solve` by enumerating every assignment (small instances; the tests' oracle)."""
    s, cs = _arrays(sensitivity, costs)
    L, C = s.shape
    groups, gpins = _groups(L, C, ties, dict(pins or {}))
    best: Solution | None = None
    options = [[gpins[gi]] if gi in gpins else list(range(C)) for gi in range(len(groups))]
    for pick in itertools.product(*options):
        choice = [0] * L
        for gi, g in enumerate(groups):
            for i in g:
                choice[i] = pick[gi]
        sol = _solution(tuple(choice), s, cs)
        if all(sol.totals[k] <= b * (1 + 1e-12) for k, b in budget.items()) and (
                best is None or sol.objective < best.objective - 1e-12):
            best = sol
    if best is None:
        raise ValueError("no assignment meets every budget")
    return best


def front(sensitivity: Any, costs: Mapping[str, Any], key: str, points: int = 8, *,
          ties: Sequence[Sequence[int]] = (), pins: Mapping[int, int] | None = None
          ) -> list[tuple[float, Solution]]:
    """The accuracy-versus-cost front: :func:`solve` at ``points`` budgets of ``key``
    spread evenly over its range (cheapest .. most expensive)."""
    if points < 2:
        raise ValueError(f"points must be at least 2, not {points}")
    lo, hi = budget_range(costs, key, ties=ties, pins=pins)
    out = []
    for b in np.linspace(lo, hi, points):
        out.append((float(b), solve(sensitivity, costs, {key: float(b)}, ties=ties,
                                    pins=pins)))
    return out


def layer_costs(shapes: Mapping[str, tuple[int, int]], tokens: int,
                candidates: Sequence[Candidate], *, array: tuple[int, int] = (16, 16),
                target: str = "xilinx") -> dict[str, np.ndarray]:
    """Per layer and candidate: ``energy`` (pJ per token: compute + on-chip + off-chip of
    the layer's GEMM over ``tokens`` tokens, divided by ``tokens``), ``bytes`` (the
    weights' bytes, scales included) and ``area`` (the PE array's area in the target's
    unit), each from :func:`costmodel.gemm_cost` of the candidate's datapath on the
    layer's shape: (tokens x in) @ (in x out) for a Linear of ``shapes[name] = (out,
    in)``. A candidate whose datapath cannot be priced is a ValueError naming it."""
    import costmodel

    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
        raise ValueError(f"tokens must be a positive int, not {tokens!r}")
    names = list(shapes)
    out = {k: np.zeros((len(names), len(candidates))) for k in COSTS}
    for c, cand in enumerate(candidates):
        try:
            dp = cand.datapath()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"candidate {cand.name!r}: {exc}") from None
        for i, name in enumerate(names):
            n_out, k_in = shapes[name]
            try:
                gc = costmodel.gemm_cost(tokens, n_out, k_in, dp, array=array, target=target)
            except ValueError as exc:
                raise ValueError(f"candidate {cand.name!r} cannot be priced on layer "
                                 f"{name!r}: {exc}") from None
            out["energy"][i, c] = gc.energy_pj["total"] / tokens
            out["bytes"][i, c] = float(gc.bytes.get("b", 0.0))
            out["area"][i, c] = gc.area
    return out


# --- sensitivity: what each choice costs in accuracy ------------------------------------
#: layers that read one input and so take one activation quantizer: tied
_TIED = (("q_proj", "k_proj", "v_proj"), ("query", "key", "value"), ("gate_proj", "up_proj"))


def layer_groups(model: Any, blocks: Sequence[int] | None = None, head: bool = False
                 ) -> list[list[str]]:
    """The model's quantizable Linear layers grouped: q/k/v of one attention and gate/up
    of one MLP tied (they read one input), every other layer alone; ``blocks``: only
    the layers of those transformer blocks (``...layers.<i>.``); the output head is
    left out unless ``head`` (then it is the last group, whatever ``blocks``: pin it,
    e.g. to bfloat16, or let the search choose). Tied layers must share their input
    size (ValueError)."""
    import re

    import torch

    get_head = getattr(model, "get_output_embeddings", None)
    out_head = get_head() if callable(get_head) else None
    mods = [(n, m) for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and m is not out_head]
    if blocks is not None:
        want = {int(b) for b in blocks}
        mods = [(n, m) for n, m in mods
                if (hit := re.search(r"layers\.(\d+)\.", n)) and int(hit.group(1)) in want]
    if head:
        named = [n for n, m in model.named_modules() if m is out_head]
        if not named or not isinstance(out_head, torch.nn.Linear):
            raise ValueError("head: the model has no Linear output head "
                             "(get_output_embeddings)")
        mods.append((named[0], out_head))
    groups: dict[tuple[str, int], list[str]] = {}
    order: list[tuple[str, int]] = []
    for i, (n, _mod) in enumerate(mods):
        parent, _, leaf = n.rpartition(".")
        key: tuple[str, int] = (n, i)
        for ti, tied in enumerate(_TIED):
            if leaf in tied:
                key = (parent, -1 - ti)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(n)
    out = [groups[k] for k in order]
    sizes = dict(mods)
    for g in out:
        ks = {sizes[n].in_features for n in g}
        if len(ks) > 1:
            raise ValueError(f"tied layers {g} have different input sizes {sorted(ks)}")
    return out


def rules_for(assignment: Mapping[str, Candidate]) -> list[tuple[str, Any]]:
    """simulate() rules putting each named layer in its candidate's formats (scaled as
    numfab's evaluations scale them) and accumulator."""
    import re

    from simulator.torch import LayerSpec

    from .evaluate import format_spec

    by: dict[Candidate, list[str]] = {}
    for name, cand in assignment.items():
        by.setdefault(cand, []).append(name)
    out: list[tuple[str, Any]] = []
    for cand, names in by.items():
        spec = format_spec(cand.weight, cand.act)
        out.append(("re:(" + "|".join(re.escape(n) for n in names) + ")", LayerSpec(**spec)))
    return out


def measured_sensitivity(model: Any, windows: Any, reference: Mapping[str, Any], device: Any,
                         groups: Sequence[Sequence[str]], candidates: Sequence[Candidate],
                         progress: bool = False) -> np.ndarray:
    """(groups, candidates): the KL divergence from the reference with only that group
    in that candidate (numfab.lm.score on ``windows``): exact, one evaluation each
    (``progress``: a progress bar)."""
    from simulator.torch import simulate

    from . import lm

    out = np.zeros((len(groups), len(candidates)))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(groups) * len(candidates), desc="measured sensitivity",
                   unit="eval")
    for gi, g in enumerate(groups):
        for c, cand in enumerate(candidates):
            if bar is not None:
                bar.update()
            sim = simulate(model, rules_for({n: cand for n in g}))
            try:
                out[gi, c] = lm.score(model, windows, dict(reference), device)["kl"]
            finally:
                sim.restore()
    return out


def fisher_sensitivity(model: Any, windows: Any, device: Any,
                       groups: Sequence[Sequence[str]], candidates: Sequence[Candidate],
                       seed: int = 0) -> np.ndarray:
    """(groups, candidates): the second-order estimate (HAWQ-V2 / ModelOpt style) of the
    KL divergence per token from the unquantized model with only that group in that
    candidate: 1/2 sum F_w dW^2 + 1/2 sum F_x dX^2 over the group's layers, dW / dX the
    candidate's quantization error of the weight and of the input (the quantizers
    simulate() puts in), F the Fisher diagonal of the weights and of the layers' inputs.

    F is the Fisher of KL(model || perturbed model), the KL's Hessian at the model: one
    backward pass per window of the summed next-token loss with labels drawn from the
    model's own distribution (``seed``), squared and divided by the tokens (tokens'
    gradients taken as uncorrelated), so the estimate is in the measured KL's units."""
    import torch

    from simulator.torch import simulate

    names = [n for g in groups for n in g]
    mods = dict(model.named_modules())
    # one window's layer inputs and squared input gradients at a time (memory: one
    # window's activations, whatever the number of windows)
    xs: dict[str, Any] = {}
    gx: dict[str, Any] = {}
    fw = {n: torch.zeros_like(mods[n].weight, dtype=torch.float32) for n in names}
    act = np.zeros((len(groups), len(candidates)))  # sum F_x dX^2 over the windows

    def hook(name: str) -> Any:
        def fn(mod: Any, args: Any) -> None:
            x = args[0]
            xs[name] = x.detach()
            if x.requires_grad:
                x.register_hook(lambda g: gx.__setitem__(name, g.detach().float() ** 2))
        return fn

    def each_candidate() -> Any:
        for c, cand in enumerate(candidates):
            sim = simulate(model, rules_for({n: cand for n in names}))
            try:
                with torch.no_grad():
                    yield c, sim.quant_layers()
            finally:
                sim.restore()

    handles = [mods[n].register_forward_pre_hook(hook(n)) for n in names]
    was = {p: p.requires_grad for p in model.parameters()}
    gen = torch.Generator(device=device).manual_seed(seed)
    ntok = 0
    try:
        for p in model.parameters():
            p.requires_grad_(True)
        for w in windows:
            win = w[None].to(device)
            model.zero_grad(set_to_none=True)
            xs.clear()
            gx.clear()
            logits = model(win).logits.float()[0, :-1]
            # labels drawn from the model's own distribution: the Fisher of
            # KL(reference || quantized), not the empirical Fisher of the text's tokens
            with torch.no_grad():
                y = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)[:, 0]
            loss = torch.nn.functional.cross_entropy(logits, y, reduction="sum")
            ntok += logits.shape[0]
            loss.backward()
            del logits, loss
            for n in names:
                g = mods[n].weight.grad
                if g is not None:
                    fw[n] += g.float() ** 2
            model.zero_grad(set_to_none=True)
            for c, ql in each_candidate():
                for gi, g in enumerate(groups):
                    for n in g:
                        layer = ql[n]
                        if layer.spec.act is not None and n in gx:
                            dx = layer._qact(xs[n]).float() - xs[n].float()
                            act[gi, c] += float((gx[n] * dx**2).sum())
        xs.clear()
        gx.clear()
    finally:
        for h in handles:
            h.remove()
        for p, r in was.items():
            p.requires_grad_(r)
        model.zero_grad(set_to_none=True)
    ntok = max(ntok, 1)
    out = 0.5 * act / ntok
    for c, ql in each_candidate():
        for gi, g in enumerate(groups):
            for n in g:
                layer = ql[n]
                if layer.spec.weight:
                    dw = layer.qweight().float() - layer.inner.weight.float()
                    out[gi, c] += 0.5 * float((fw[n] * dw**2).sum()) / ntok
    return out


@dataclasses.dataclass
class SearchResult:
    """What :func:`search` found: the groups, candidates, sensitivities and costs per
    group; per budget the chosen assignment with its predicted and measured KL; each
    candidate on every searched layer (``uniform``, measured); seconds per phase."""

    groups: list[list[str]]
    candidates: list[Candidate]
    sensitivity: np.ndarray
    costs: dict[str, np.ndarray]
    points: list[dict[str, Any]]
    uniform: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    estimator: str = "fisher"

    def assignment(self, i: int) -> dict[str, Candidate]:
        """Layer name -> candidate of point ``i``."""
        ch = self.points[i]["choice"]
        return {n: self.candidates[ch[gi]] for gi, g in enumerate(self.groups) for n in g}

    def to_json(self, **meta: Any) -> dict[str, Any]:
        """A JSON-able record (``kind`` "numfab-search", what :func:`numfab.report.
        write_report` reads), with ``meta`` (model, windows, ...) added."""
        return {"kind": RESULTS_KIND, "version": 1, **meta, "estimator": self.estimator,
                "candidates": [dataclasses.asdict(c) for c in self.candidates],
                "groups": self.groups, "sensitivity": self.sensitivity.tolist(),
                "costs": {k: v.tolist() for k, v in self.costs.items()},
                "uniform": self.uniform, "seconds": self.seconds,
                "points": [{**pt, "choice": [self.candidates[c].name for c in pt["choice"]]}
                           for pt in self.points]}


#: the ``kind`` of a search's results file
RESULTS_KIND = "numfab-search"


def rules_toml(assignment: Mapping[str, Candidate]) -> str:
    """:func:`rules_for` as the rules file (TOML) ``numfab eval --config`` and
    ``simulate()``'s loaders take."""
    import json

    lines = []
    for pattern, spec in rules_for(assignment):
        lines.append(f"[{json.dumps(pattern)}]")
        for field in ("weight", "act", "granularity", "act_granularity"):
            v = getattr(spec, field)
            if v is not None and not (field.endswith("granularity") and v == "auto"):
                lines.append(f"{field} = {json.dumps(str(v))}")
        lines.append("")
    return "\n".join(lines)


def group_costs(model: Any, groups: Sequence[Sequence[str]], candidates: Sequence[Candidate],
                tokens: int, **kw: Any) -> dict[str, np.ndarray]:
    """:func:`layer_costs` of every layer, summed over each group."""
    mods = dict(model.named_modules())
    shapes = {n: (mods[n].out_features, mods[n].in_features) for g in groups for n in g}
    per = layer_costs(shapes, tokens, candidates, **kw)
    row = {n: i for i, n in enumerate(shapes)}
    return {k: np.array([[v[[row[n] for n in g], c].sum() for c in range(len(candidates))]
                         for g in groups]) for k, v in per.items()}


def measure(model: Any, windows: Any, reference: Mapping[str, Any], device: Any,
            assignment: Mapping[str, Candidate]) -> dict[str, Any]:
    """numfab.lm.score of the model with each named layer in its candidate."""
    from simulator.torch import simulate

    from . import lm

    sim = simulate(model, rules_for(assignment)) if assignment else None
    try:
        return lm.score(model, windows, dict(reference), device)
    finally:
        if sim is not None:
            sim.restore()


def search(model: Any, windows: Any, reference: Mapping[str, Any], device: Any,
           candidates: Sequence[Candidate], budgets: Sequence[Mapping[str, float]] = (), *,
           blocks: Sequence[int] | None = None, tokens: int = 512,
           estimator: str = "fisher", pins: Mapping[str, str] | None = None,
           front: tuple[str, int] | None = None, calib: Any = None,
           calib_reference: Mapping[str, Any] | None = None, verify: bool = True,
           uniform: bool = False, head: bool = False,
           costs: Mapping[str, Any] | None = None, **cost_kw: Any) -> SearchResult:
    """Per-layer candidates for each budget: groups (:func:`layer_groups`), sensitivity
    by ``estimator`` ("fisher" or "measured") on the calibration windows ``calib`` (with
    ``calib_reference`` for "measured"; None: ``windows`` and ``reference``), costs per
    group for ``tokens`` tokens (:func:`group_costs`), :func:`solve` per budget (pins:
    layer name -> candidate name; a group is pinned where any of its layers is);
    ``front=(key, n)`` adds ``n`` budgets of ``key`` spread evenly from the cheapest to
    the most expensive total the pins allow. Then (``verify``) each chosen configuration
    is measured for real on ``windows`` (KL, perplexity, top-1) beside its prediction,
    and (``uniform``) so is each candidate on every searched layer. ``head``: the output
    head is searched too (its own group; e.g. pins={"lm_head": "bfloat16"}). ``costs``:
    :func:`group_costs` of these groups, where the caller has them already."""
    import time

    if estimator not in ("fisher", "measured"):
        raise ValueError(f"estimator must be 'fisher' or 'measured', not {estimator!r}")
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise ValueError(f"candidate names must be distinct, not {names}")
    if calib is None:
        calib, calib_reference = windows, reference
    elif estimator == "measured" and calib_reference is None:
        raise ValueError("the measured estimator on calibration windows needs their "
                         "reference (calib_reference)")
    groups = layer_groups(model, blocks, head)
    if not groups:
        raise ValueError(f"no quantizable Linear layers (blocks={blocks})")
    gpins: dict[int, int] = {}
    for layer, cname in (pins or {}).items():
        if cname not in names:
            raise ValueError(f"pin {layer}={cname}: no candidate named {cname!r}; "
                             f"candidates: {', '.join(names)}")
        hit = [gi for gi, g in enumerate(groups) if layer in g]
        if not hit:
            raise ValueError(f"pin {layer}={cname}: no searched layer named {layer!r}")
        gpins[hit[0]] = names.index(cname)
    if costs is None:
        costs = group_costs(model, groups, candidates, tokens, **cost_kw)
    costs = {k: np.asarray(v, dtype=np.float64) for k, v in costs.items()}
    budgets = [dict(b) for b in budgets]
    if front is not None:
        key, n = front
        if key not in COSTS:
            raise ValueError(f"front: key must be one of {', '.join(COSTS)}, not {key!r}")
        if not isinstance(n, int) or isinstance(n, bool) or n < 2:
            raise ValueError(f"front: points must be an int >= 2, not {n!r}")
        lo, hi = budget_range(costs, key, pins=gpins)
        budgets += [{key: float(b)} for b in np.linspace(lo, hi, n)]
    if not budgets:
        raise ValueError("give at least one budget or a front")
    t0 = time.perf_counter()
    if estimator == "fisher":
        sens = fisher_sensitivity(model, calib, device, groups, candidates)
    else:
        assert calib_reference is not None
        sens = measured_sensitivity(model, calib, calib_reference, device, groups,
                                    candidates)
    t1 = time.perf_counter()
    points = []
    for b in budgets:
        sol = solve(sens, costs, b, pins=gpins)
        pt: dict[str, Any] = {"budget": dict(b), "choice": list(sol.choice),
                              "predicted": sol.objective, "totals": sol.totals}
        points.append(pt)
    t2 = time.perf_counter()
    res = SearchResult(groups, list(candidates), sens, costs, points, estimator=estimator,
                       seconds={"sensitivity": t1 - t0, "solve": t2 - t1})
    if verify:
        for i, pt in enumerate(points):
            m = measure(model, windows, reference, device, res.assignment(i))
            pt.update(kl=m["kl"], perplexity=m["perplexity"],
                      top1_agreement=m["top1_agreement"])
    if uniform:
        for i, c in enumerate(candidates):
            m = measure(model, windows, reference, device, {n: c for g in groups for n in g})
            res.uniform.append({"candidate": c.name,
                                **{k: float(v[:, i].sum()) for k, v in costs.items()},
                                "kl": m["kl"], "perplexity": m["perplexity"],
                                "top1_agreement": m["top1_agreement"]})
    res.seconds["verify"] = time.perf_counter() - t2
    return res
