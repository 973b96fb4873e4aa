"""The committed results in bench/results/ name only variants that exist: a record of a variant
that was renamed or removed (bench_cpu.json showed winograd_im2col long after it went) is stale,
and the docs that quote it with it."""
import glob
import json
import os
import re

import pytest

from pykern._registry import BACKENDS, variants

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "results")
FILES = sorted(glob.glob(os.path.join(RESULTS, "**", "*.json"), recursive=True))
KEY = re.compile(rf"^({'|'.join(BACKENDS)})/(\w+)$")  # "numpy/im2col_threads", as bench and compare write


def named_variants(doc, op=None):
    """Every (op, backend, variant) a results document names, in any of the forms bench, compare,
    bench_conv2d_cpu.py and device_run.sh write: records with op/backend/variant, 'backend/name'
    strings beside an op, and bench_conv2d_cpu.py's 'pykern:<name>' keys for its op on numpy
    (the document's "op", conv2d in records written before --op) with the variants its "routed"
    maps name ('pykern:default' is the column of what a call without variant= runs, not a variant)."""
    if isinstance(doc, dict):
        op = doc.get("op", op)
        if {"op", "backend", "variant"} <= set(doc) and doc.get("kind", "variant") == "variant":
            yield doc["op"], doc["backend"], doc["variant"]
        for k, v in doc.items():
            if k == "routed" and isinstance(v, dict):
                yield from ((op or "conv2d", "numpy", name) for name in v.values())
                continue
            if k.startswith("pykern:") and k != "pykern:default":
                yield op or "conv2d", "numpy", k.split(":", 1)[1]
            if k == "default_variant" and isinstance(v, str):
                yield op or "conv2d", "numpy", v
            if isinstance(v, str) and op and KEY.match(v):
                yield (op,) + KEY.match(v).groups()
            else:
                yield from named_variants(v, op)
    elif isinstance(doc, list):
        for v in doc:
            yield from named_variants(v, op)


def test_there_are_committed_results():
    assert FILES, f"no JSON under {RESULTS}"


@pytest.mark.parametrize("path", FILES, ids=[os.path.relpath(p, RESULTS) for p in FILES])
def test_committed_results_name_only_variants_that_exist(path):
    with open(path) as f:
        doc = json.load(f)
    known = {(v.op, v.backend, v.name) for v in variants()}
    stale = sorted(set(named_variants(doc)) - known)
    assert not stale, f"{os.path.relpath(path, RESULTS)} names variants that no longer exist: {stale}; regenerate it"


def test_the_scan_finds_what_it_looks_for():
    """The scan itself can fail: a removed variant in each form is found."""
    doc = {"entries": [{"op": "conv2d", "backend": "numpy", "variant": "winograd_im2col", "kind": "variant"}],
           "ops": [{"op": "relu", "cpu": "numpy/gone", "rows": []}],
           "layers": {"l": {"pykern:old": {}, "pykern:default": {}}}, "routed": {"l": "older"}}
    assert set(named_variants(doc)) == {("conv2d", "numpy", "winograd_im2col"), ("relu", "numpy", "gone"),
                                        ("conv2d", "numpy", "old"), ("conv2d", "numpy", "older")}
    gradient = {"op": "conv2d_backward_input", "default_variant": "threaded", "layers": {"l": {"pykern:old": {}}}}
    assert set(named_variants(gradient)) == {("conv2d_backward_input", "numpy", "threaded"),
                                             ("conv2d_backward_input", "numpy", "old")}
