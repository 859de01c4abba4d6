"""numba set-up shared by every kernel of formats/ (and its public :mod:`formats.odd`):
the JIT options, in one place, and the bit reinterpretation the kernels build on.

Bit-exact kernels never use fastmath. Kernels are cached on disk (``cache=True``);
numba's cache tracks only the file of the function it compiled, so after editing a
function that jitted code in another file inlines (this file's, :mod:`formats.odd`'s,
``_kernels/_common.py``'s), delete the ``__pycache__`` folders of formats/ and simulator/.
"""

from __future__ import annotations

from typing import Any

import numba

JIT: dict[str, Any] = {"cache": True, "nogil": True}
PJIT: dict[str, Any] = {**JIT, "parallel": True}
INLINE: dict[str, Any] = {"cache": True, "inline": "always"}


@numba.extending.intrinsic
def bitcast(typingctx, x, like):  # type: ignore[no-untyped-def]  # pragma: no cover
    """Reinterpret the bits of scalar ``x`` as the scalar type of ``like`` (same width)."""
    target = like.dtype if isinstance(like, numba.types.Array) else like
    sig = target(x, like)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], context.get_value_type(target))

    return sig, codegen
