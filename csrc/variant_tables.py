"""Copies the variant tables at the bottom of kernels/*.cu into a Python module, at build time.

pykern/cuda/ registers the CUDA C++ variants from these rows. The compiled extensions expose the
same rows (<op>_variants), but a copy made from the sources lets an install without either
extension (PYKERN_NO_CUDA=1 PYKERN_NO_CUDA_SIM=1, or no compiler) list the same variants, and
registration never has to import an extension. tests/test_cuda_sim.py checks that the copy
equals what the compiled module binds, so a row this script misreads fails the tests.

    python csrc/variant_tables.py OUT.py kernels/relu.cu kernels/matmul.cu ...

pykern/cuda/_launch.py also imports read_tables from here when it runs from a source tree that
was never built, so the variants are listed there too.

A table is `Variant<Launcher> NAME[] = { rows };` and every row is
{"name", DTYPES, true|false, launcher, "technique" ["continued"...] [, TAKES]}, DTYPES being kF16,
kBF16, kF32, kF64 joined by |, the optional TAKES kTransposeA, kTransposeB joined by | (the
optional parameters the variant handles, listed in bit order). Anything else inside the braces that looks like a row is an error.
"""
from __future__ import annotations

import ast
import os
import pprint
import re
import sys

DTYPES = {"kF16": "float16", "kBF16": "bfloat16", "kF32": "float32", "kF64": "float64"}
TAKES = {"kTransposeA": "transpose_a", "kTransposeB": "transpose_b"}  # Takes constants (kernels/pykern.h)
ORDER = list(DTYPES.values())  # DType's enumerator order, which the bindings list them in
TABLE = re.compile(r"Variant<\w+>\s+\w+\[\]\s*=\s*\{(?P<body>.*?)\n\};", re.S)
STRING = r'"(?:[^"\\\n]|\\.)*"'
ROW = re.compile(r'\{\s*"(?P<name>\w+)"\s*,\s*(?P<dtypes>[\w\s|]+?)\s*,\s*(?P<default>true|false)\s*,'
                 rf'\s*(?P<launch>\w+)\s*,\s*(?P<technique>(?:{STRING}\s*)+)'
                 r'(?:,\s*(?P<takes>[\w\s|]+?)\s*)?\}')


class TableError(ValueError):
    """A variant table this script cannot read; the message names the file and the row."""


def read_table(path: str) -> list[dict]:
    op = os.path.splitext(os.path.basename(path))[0]
    with open(path, encoding="utf-8") as f:
        src = f.read()
    tables = TABLE.findall(src)
    if len(tables) != 1:
        raise TableError(f"{path}: expected one variant table (Variant<...> NAME[] = {{...}};), found {len(tables)}")
    body = re.sub(r"//[^\n]*", "", tables[0])  # comments: no technique contains "//"
    rows = []
    for m in ROW.finditer(body):
        tokens = [t.strip() for t in m["dtypes"].split("|")]
        unknown = [t for t in tokens if t not in DTYPES]
        if unknown:
            raise TableError(f"{path}: row {m['name']!r}: unknown dtypes {unknown} (use {' | '.join(DTYPES)})")
        names = {DTYPES[t] for t in tokens}
        takes = [t.strip() for t in (m["takes"] or "kTakesNothing").split("|")]
        if [t for t in takes if t not in TAKES and t != "kTakesNothing"]:
            raise TableError(f"{path}: row {m['name']!r}: unknown takes {takes} (use {' | '.join(TAKES)})")
        technique = "".join(ast.literal_eval(s) for s in re.findall(STRING, m["technique"]))
        rows.append({"name": m["name"], "technique": technique, "dtypes": [d for d in ORDER if d in names],
                     "default": m["default"] == "true", "kernel": f"{op}_{m['name']}",
                     "takes": [TAKES[t] for t in TAKES if t in takes]})
    if not rows or len(rows) != body.count('{"'):
        raise TableError(f"{path}: read {len(rows)} of the {body.count(chr(123) + chr(34))} rows of its variant "
                         "table; keep each row {\"name\", DTYPES, default, launcher, \"technique\"}")
    names = [r["name"] for r in rows]
    if len(set(names)) != len(names) or sum(r["default"] for r in rows) != 1:
        raise TableError(f"{path}: variant names must be unique and exactly one row the default")
    return rows


def read_tables(sources) -> dict:
    """{op: rows} for kernels/<op>.cu files."""
    return {os.path.splitext(os.path.basename(p))[0]: read_table(str(p)) for p in sorted(map(str, sources))}


def main(out: str, sources: list[str]) -> None:
    try:
        tables = read_tables(sources)
    except TableError as e:
        raise SystemExit(f"csrc/variant_tables.py: {e}") from None
    text = ('"""The CUDA C++ variant tables, copied from the bottom of kernels/*.cu at build time by\n'
            'csrc/variant_tables.py: edit the .cu files, not this."""\n'
            f"TABLES = {pprint.pformat(tables, width=110, sort_dicts=False)}\n")
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
