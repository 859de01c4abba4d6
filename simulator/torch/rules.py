"""A simulate() config as rules: layer-name patterns and the specs they set, merged."""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .spec import SPEC_FIELDS, LayerSpec, fmt_of

__all__ = ["match", "merge", "rules"]


def match(pattern: str, name: str) -> bool:
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], name) is not None
    return fnmatch.fnmatchcase(name, pattern)


def rules(config: Any) -> list[tuple[str, LayerSpec]]:
    if isinstance(config, LayerSpec):
        return [("*", config)]
    items: Iterable[Any]
    if isinstance(config, Mapping):
        items = config.items()
    elif isinstance(config, (list, tuple)):
        items = config
    else:
        raise TypeError("config must be a LayerSpec, a mapping {pattern: LayerSpec or dict} "
                        f"or a list of (pattern, spec) pairs, not {type(config).__name__}")
    out = []
    for item in items:
        try:
            pattern, spec = item
        except (TypeError, ValueError):
            raise TypeError(f"config entries must be (pattern, spec) pairs, not {item!r}") \
                from None
        if not isinstance(pattern, str):
            raise TypeError(f"layer patterns must be strings, not {pattern!r}")
        if pattern.startswith("re:"):
            try:
                re.compile(pattern[3:])
            except re.error as exc:
                raise ValueError(f"rule {pattern!r}: {pattern[3:]!r} is not a valid regular "
                                 f"expression ({exc})") from None
        if isinstance(spec, Mapping):
            unknown = [k for k in spec if k not in SPEC_FIELDS]
            if unknown:
                hints = [f"{k!r} (did you mean {m[0]!r}?)" if m else repr(k) for k in unknown
                         for m in [difflib.get_close_matches(str(k), SPEC_FIELDS, 1)]]
                raise TypeError(f"rule {pattern!r}: unknown LayerSpec field(s) "
                                f"{', '.join(hints)}; valid fields: {', '.join(SPEC_FIELDS)}")
            try:
                spec = LayerSpec(**spec)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"rule {pattern!r}: {exc}") from None
        if not isinstance(spec, LayerSpec):
            raise TypeError(f"rule {pattern!r}: spec must be a LayerSpec or a dict, not "
                            f"{type(spec).__name__}")
        out.append((pattern, spec))
    return out


def merge(a: LayerSpec, b: LayerSpec) -> LayerSpec:
    """``b`` over ``a``: the fields ``b`` sets (not None / not 'auto') win."""
    kw = {}
    for f in dataclasses.fields(LayerSpec):
        vb = getattr(b, f.name)
        default = fmt_of(f.default, f.name) if f.name == "outlier_format" else f.default
        kw[f.name] = getattr(a, f.name) if vb is None or vb == default else vb
    return LayerSpec(**kw)
