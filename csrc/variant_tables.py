"""Copies the variant tables of kernels/**/*.cu into a Python module, at build time.

pykern/cuda/ registers the CUDA C++ variants from these rows. The compiled extensions expose the
same rows (<op>_variants, <op>_info), but a copy made from the sources lets an install without
either extension (PYKERN_NO_CUDA=1 PYKERN_NO_CUDA_SIM=1, or no compiler) list the same variants,
and registration never has to import an extension. tests/test_cuda_tables.py checks that the
copy equals what the compiled module binds, so a row this script misreads fails the tests.

    python csrc/variant_tables.py OUT.py kernels/relu.cu kernels/matmul/table.cu ...

pykern/cuda/_launch.py also imports read_all from here when it runs from a source tree that
was never built, so the variants are listed there too.

A table is a file's `constexpr Variant NAME[] = { rows };` registered by the line
`PYKERN_TABLE(op, Dims, "inputs", NAME[, unsupported[, configs]]);` (kernels/pykern.h). Every
row is {"name", DTYPES, true|false, launcher, "technique" ["continued"...] [, TAKES]}, DTYPES
being kF16, kBF16, kF32, kF64 joined by |, the optional TAKES kTransposeA, kTransposeB joined by
| (the optional parameters the variant handles, listed in bit order). Anything else inside the
braces that looks like a row is an error, as is a table without its registration line or a
registration naming no table. A file without either is skipped (a kernel family whose rows a
table file gathers).
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
TABLE = re.compile(r"\bVariant\s+(?P<array>\w+)\[\]\s*=\s*\{(?P<body>.*?)\n\};", re.S)
REGISTER = re.compile(r'^PYKERN_TABLE\(\s*(?P<op>\w+)\s*,\s*(?P<dims>\w+)\s*,\s*"(?P<inputs>[\w\s,?]*)"\s*,'
                      r'\s*(?P<array>\w+)\s*(?:,\s*(?P<unsupported>\w+)\s*)?(?:,\s*(?P<configs>\w+)\s*)?\);', re.M)
STRING = r'"(?:[^"\\\n]|\\.)*"'
ROW = re.compile(r'\{\s*"(?P<name>\w+)"\s*,\s*(?P<dtypes>[\w\s|]+?)\s*,\s*(?P<default>true|false)\s*,'
                 rf'\s*(?P<launch>\w+)\s*,\s*(?P<technique>(?:{STRING}\s*)+)'
                 r'(?:,\s*(?P<takes>[\w\s|]+?)\s*)?\}')


class TableError(ValueError):
    """A variant table this script cannot read; the message names the file and the row."""


def read_table(path: str):
    """(op, rows, info) of the table the file at ``path`` registers, or None when it has none."""
    with open(path, encoding="utf-8") as f:
        src = f.read()
    tables = list(TABLE.finditer(src))
    registrations = list(REGISTER.finditer(src))
    if not tables and not re.search(r"^\s*PYKERN_TABLE\(", src, re.M):
        return None
    if len(registrations) != 1:
        raise TableError(f"{path}: expected one registration line PYKERN_TABLE(op, Dims, \"inputs\", rows"
                         f"[, unsupported[, configs]]); at the start of a line, found {len(registrations)}")
    reg = registrations[0]
    op = reg["op"]
    named = [t for t in tables if t["array"] == reg["array"]]
    if len(tables) != 1 or not named:
        raise TableError(f"{path}: expected one variant table (constexpr Variant {reg['array']}[] = {{...}};) "
                         f"for PYKERN_TABLE({op}, ...), found {[t['array'] for t in tables]}")
    body = re.sub(r"//[^\n]*", "", named[0]["body"])  # comments: no technique contains "//"
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
    inputs = [n.strip() for n in reg["inputs"].split(",")]
    info = {"inputs": [n.rstrip("?") for n in inputs], "optional": [n.rstrip("?") for n in inputs if n.endswith("?")],
            "unsupported": reg["unsupported"] not in (None, "nullptr")}
    return op, rows, info


def read_all(sources) -> tuple[dict, dict]:
    """({op: rows}, {op: info}) for the .cu files in ``sources`` that register a table, ops in
    name order; info: {"inputs", "optional", "unsupported"} from the registration line."""
    tables, infos, where = {}, {}, {}
    for path in sorted(map(str, sources)):
        found = read_table(path)
        if found is None:
            continue
        op, rows, info = found
        if op in tables:
            raise TableError(f"{path}: a second table for {op!r} (the first is in {where[op]})")
        tables[op], infos[op], where[op] = rows, info, path
    return dict(sorted(tables.items())), dict(sorted(infos.items()))


def read_tables(sources) -> dict:
    """{op: rows} for the .cu files in ``sources``."""
    return read_all(sources)[0]


def main(out: str, sources: list[str]) -> None:
    try:
        tables, infos = read_all(sources)
    except TableError as e:
        raise SystemExit(f"csrc/variant_tables.py: {e}") from None
    text = ('"""The CUDA C++ variant tables, copied from kernels/**/*.cu at build time by\n'
            'csrc/variant_tables.py: edit the .cu files, not this."""\n'
            f"TABLES = {pprint.pformat(tables, width=110, sort_dicts=False)}\n"
            f"INFO = {pprint.pformat(infos, width=110, sort_dicts=False)}\n")
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
