"""The registry's own rules: what register() refuses, and where a variant's technique line comes from."""
import numpy as np
import pytest

import pykern as pk
from pykern import _registry


def _relu_numpy(x, y):
    """np.maximum into the output (a stand-in)."""
    np.maximum(x, 0, out=y)


def _undocumented(x, y):
    np.maximum(x, 0, out=y)


def test_technique_from_a_table_or_the_docstring():
    def from_doc(x, y):
        """Technique named in the docstring.

        More lines are not the technique."""
        _relu_numpy(x, y)

    _registry.register("relu", "numpy", dtypes=("float32",), name="t_from_table",
                       technique="technique given by a table row")(_relu_numpy)
    _registry.register("relu", "numpy", dtypes=("float32",), name="t_from_doc")(from_doc)
    try:
        listed = {v.name: v.technique for v in pk.variants("relu", "numpy")}
        assert listed["t_from_table"] == "technique given by a table row"
        assert listed["t_from_doc"] == "Technique named in the docstring."
        x = np.float32([1.5, -2.0, 3.0])
        assert pk.relu(x, variant="t_from_table").tolist() == [1.5, 0.0, 3.0]
    finally:
        _registry.unregister("relu", "numpy", "t_from_table")
        _registry.unregister("relu", "numpy", "t_from_doc")
    assert not {"t_from_table", "t_from_doc"} & {v.name for v in pk.variants("relu", "numpy")}


@pytest.mark.parametrize("kwargs,name,match", [
    ({"op": "softmax"}, "x", r"unknown op 'softmax'"),
    ({"backend": "tpu"}, "x", r"unknown backend 'tpu'"),
    ({"fn": _undocumented}, "no_doc", r"relu/numpy/no_doc needs a one-line docstring"),
    ({"default": True}, "second_default", r"relu/numpy already has a default variant"),
    ({}, "maximum", r"variant relu/numpy/maximum registered twice"),
    ({"error_model": "tile", "default": True}, "x", r"a default variant must meet the tolerance"),
])
def test_register_refuses(kwargs, name, match):
    kwargs = dict(kwargs)
    args = {"op": "relu", "backend": "numpy", "fn": _relu_numpy} | {
        k: kwargs.pop(k) for k in ("op", "backend", "fn") if k in kwargs}
    pk.variants()  # every backend loaded, so a clash with a registered variant shows
    before = [v.key for v in pk.variants()]
    with pytest.raises(ValueError, match=match):
        _registry.register(args["op"], args["backend"], dtypes=("float32",), name=name, **kwargs)(args["fn"])
    assert [v.key for v in pk.variants()] == before
