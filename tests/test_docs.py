"""The documentation matches the code: its links lead somewhere, the records it cites exist, and
the README's example runs, and the README's CPU tables are generated from the records."""
import glob
import importlib.util
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "bench", "README.md")] + sorted(
    glob.glob(os.path.join(ROOT, "docs", "*.md")))
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
RECORD = re.compile(r"`(bench/results/[^`]+\.(?:json|log|png))`")


def _ids(paths):
    return [os.path.relpath(p, ROOT) for p in paths]


@pytest.mark.parametrize("doc", DOCS, ids=_ids(DOCS))
def test_links_and_cited_records_exist(doc):
    text = open(doc).read()
    prose = re.sub(r"```.*?```", "", text, flags=re.S)  # code is not links
    missing = [t for t in LINK.findall(prose) if not t.startswith(("http://", "https://"))
               and not os.path.exists(os.path.join(os.path.dirname(doc), t))]
    missing += [r for r in RECORD.findall(text) if "<" not in r and not os.path.exists(os.path.join(ROOT, r))]
    assert not missing, f"{os.path.relpath(doc, ROOT)} points at files that do not exist: {missing}"


def test_the_readme_example_runs(capsys):
    text = open(os.path.join(ROOT, "README.md")).read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the README has no Python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    import pykern as pk
    if pk.backends()["cuda"].available:
        assert "conv2d/cuda/implicit_gemm: PASS" in capsys.readouterr().out


def test_the_readme_cpu_table_is_generated_from_the_records():
    """The README's CPU tables are bench/cpu_table.py's output on the committed records, never
    numbers typed by hand or left behind by a newer record."""
    spec = importlib.util.spec_from_file_location("cpu_table", os.path.join(ROOT, "bench", "cpu_table.py"))
    ct = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ct)
    block = ct.block_of(open(os.path.join(ROOT, "README.md")).read())
    assert block is not None, f"README.md has no block between {ct.BEGIN!r} and {ct.END!r}"
    assert block == ct.markdown(), ("README.md's CPU table is not what bench/results/cpu/ gives: "
                                    "python bench/cpu_table.py --write README.md")
