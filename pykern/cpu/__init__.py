"""The NumPy backend: vectorized CPU fallbacks, and the references (pykern/ops/) registered as
``reference`` variants."""
from .._registry import import_op_modules

import_op_modules(__name__, __path__)  # one module per op, each registering its variants

from ._compiled import register_tables  # noqa: E402

register_tables()  # the compiled kernels (pykern._cpu), after the NumPy ones, where built
