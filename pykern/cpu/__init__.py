"""The NumPy backend: vectorized CPU fallbacks, the references (pykern/ops/) registered as
``reference`` variants, and, where pykern._cpu was built, the compiled CPU kernels
(kernels/cpu/*.cpp, registered by _compiled.py after the NumPy ones)."""
from .._registry import import_op_modules

import_op_modules(__name__, __path__)  # one module per op, each registering its variants

from ._compiled import register_tables  # noqa: E402

register_tables()  # the compiled kernels (pykern._cpu), after the NumPy ones, where built
