"""bindings/stratacache.cdef against the real header: same functions with the
same types, same enum values, same struct layouts, nothing cffi-only."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import cffi
import pytest

ROOT = Path(__file__).resolve().parents[2]
HEADER = ROOT / "core" / "include" / "stratacache.h"
CDEF = ROOT / "bindings" / "stratacache.cdef"


def strip_comments(s: str) -> str:
    return re.sub(r"/\*.*?\*/|//[^\n]*", "", s, flags=re.S)


def statements(text: str):
    out, depth, cur = [], 0, []
    for ch in text:
        cur.append(ch)
        depth += ch == "{"
        depth -= ch == "}"
        if ch == ";" and depth == 0:
            out.append("".join(cur).strip())
            cur = []
    return out


def test_cdef_is_plain_declarations():
    text = strip_comments(CDEF.read_text())
    assert "#" not in text, "no preprocessor lines (LuaJIT shares this file)"
    assert "..." not in text, "no cffi '...' (LuaJIT shares this file)"
    ffi = cffi.FFI()
    ffi.cdef(text)  # parses on its own


def test_same_functions_and_constants_as_header():
    header = strip_comments(HEADER.read_text())
    cdef = strip_comments(CDEF.read_text())
    hfuncs = set(re.findall(r"STRATA_EXTERN[^;(]*?\b(strata_\w+)\s*\(", header))
    cfuncs = {m for s in statements(cdef) if "{" not in s and "typedef" not in s
              for m in re.findall(r"\b(strata_\w+)\s*\(", s)[:1]}
    assert hfuncs and cfuncs == hfuncs
    henums = set(re.findall(r"\b(STRATA_[A-Z0-9_]+)\s*=", header))
    cenums = set(re.findall(r"\b(STRATA_[A-Z0-9_]+)\s*=", cdef))
    assert henums and cenums == henums


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler (cc)")
def test_compiles_against_header(tmp_path):
    cdef = strip_comments(CDEF.read_text())
    ffi = cffi.FFI()
    ffi.cdef(cdef)
    lines = ['#include <stddef.h>', '#include "stratacache.h"']
    for st in statements(cdef):
        if "{" in st:
            continue
        # Redeclarations: C11 accepts a repeated typedef or function
        # declaration only when the types are identical.
        lines.append(st)
    enums = re.findall(r"typedef enum (strata_\w+) \{", cdef)
    for name in re.findall(r"\b(STRATA_[A-Z0-9_]+)\s*=", cdef):
        lines.append(f"_Static_assert({name} == ({_enum_value(ffi, enums, name)}), \"{name}\");")
    for struct in re.findall(r"typedef struct (strata_\w+) \{", cdef):
        t = ffi.typeof(struct)
        lines.append(f"_Static_assert(sizeof({struct}) == {ffi.sizeof(t)}, \"sizeof {struct}\");")
        for field, _ in t.fields:
            lines.append(f"_Static_assert(offsetof({struct}, {field}) == {ffi.offsetof(t, field)}, "
                         f"\"{struct}.{field}\");")
    lines.append("int main(void) { return 0; }")
    src = tmp_path / "cdef_check.c"
    src.write_text("\n".join(lines) + "\n")
    cc = os.environ.get("CC", "cc")
    r = subprocess.run([cc, "-std=c11", "-Wall", "-Werror", "-fsyntax-only", f"-I{ROOT / 'core' / 'include'}",
                        str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _enum_value(ffi, enums, name):
    for enum in enums:
        rel = ffi.typeof(enum).relements
        if name in rel:
            return rel[name]
    raise KeyError(name)


def test_native_module_matches_header_values():
    from stratacache._native import lib
    header = strip_comments(HEADER.read_text())
    for name, val in re.findall(r"\b(STRATA_[A-Z0-9_]+)\s*=\s*(-?\d+)", header):
        assert getattr(lib, name) == int(val), name

