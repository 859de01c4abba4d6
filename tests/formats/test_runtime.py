"""Importing numfab changes no process-global state; formats.setup_runtime() is explicit
and never overrides a setting the user made."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, os, numba
import formats, simulator
started = True
try:
    numba.threading_layer()
except ValueError:
    started = False
before = {"omp": os.environ.get("OMP_WAIT_POLICY"), "layer": numba.config.THREADING_LAYER,
          "started": started}
done = formats.setup_runtime() if os.environ.get("CALL") else {}
after = {"omp": os.environ.get("OMP_WAIT_POLICY"), "layer": numba.config.THREADING_LAYER}
print(json.dumps({"before": before, "done": done, "after": after}))
"""


def _probe(**env: str) -> dict:
    e = {k: v for k, v in os.environ.items()
         if k not in ("OMP_WAIT_POLICY", "NUMBA_THREADING_LAYER", "CALL", "NUMFAB_MALLOPT")}
    e.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE], env=e, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_import_changes_nothing() -> None:
    r = _probe()
    assert r["before"] == {"omp": None, "layer": "default", "started": False}
    assert r["after"] == {"omp": None, "layer": "default"}


def test_setup_runtime_tunes_when_asked() -> None:
    import ctypes.util

    r = _probe(CALL="1")
    if ctypes.util.find_library("gomp"):
        assert r["after"] == {"omp": "PASSIVE", "layer": "omp"}
    else:  # no libgomp: the workqueue pool, no wait policy to set
        assert r["after"] == {"omp": None, "layer": "workqueue"}
    assert r["done"]["threading_layer"] == r["after"]["layer"] and "malloc" in r["done"]


def test_setup_runtime_keeps_the_users_settings() -> None:
    r = _probe(CALL="1", OMP_WAIT_POLICY="ACTIVE", NUMBA_THREADING_LAYER="workqueue",
               NUMFAB_MALLOPT="0")
    assert r["after"] == {"omp": "ACTIVE", "layer": "workqueue"}
    assert r["done"] == {}
