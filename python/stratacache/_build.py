"""cffi API-mode build of stratacache._native.

By default every core/src/**/*.c is compiled straight into the extension, so
``pip install .`` needs no separate CMake step. ``STRATACACHE_USE_SYSTEM_LIB=1``
links an installed libstratacache (found through pkg-config when available)
instead.
"""
from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

from cffi import FFI

ROOT = Path(__file__).resolve().parents[2]
CDEF = ROOT / "bindings" / "stratacache.cdef"


def _pkg_config(*args: str) -> Optional[List[str]]:
    try:
        out = subprocess.run(
            ["pkg-config", *args], check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return shlex.split(out)


def _flags(packages: List[str], fallback_libs: List[str]) -> Dict[str, List[str]]:
    kw: Dict[str, List[str]] = {
        "include_dirs": [],
        "library_dirs": [],
        "libraries": [],
        "extra_link_args": [],
    }
    cflags = _pkg_config("--cflags", *packages)
    libs = _pkg_config("--libs", *packages)
    if cflags is None or libs is None:
        kw["libraries"] = list(fallback_libs)
        return kw
    for f in cflags:
        if f.startswith("-I"):
            kw["include_dirs"].append(f[2:])
    for f in libs:
        if f.startswith("-l"):
            kw["libraries"].append(f[2:])
        elif f.startswith("-L"):
            kw["library_dirs"].append(f[2:])
        else:
            kw["extra_link_args"].append(f)
    for lib in ("pthread", "m"):
        if lib not in kw["libraries"]:
            kw["libraries"].append(lib)
    return kw


def _rel(p: Path) -> str:
    # setuptools prefers source paths relative to setup.py's directory.
    try:
        return os.path.relpath(p, os.getcwd())
    except ValueError:
        return str(p)


ffibuilder = FFI()
ffibuilder.cdef(CDEF.read_text(encoding="utf-8"))
# Python writers called from C (stratacache/_writes.py). Not in the shared
# cdef: LuaJIT does not read extern "Python".
ffibuilder.cdef("""
extern "Python" int strata_py_writer(void *, const char *, size_t, const char *, size_t, strata_write *);
extern "Python" int strata_py_batch_writer(void *, size_t, const char *const *, const size_t *,
                                           const char *const *, const size_t *, strata_write *);
""")

if os.environ.get("STRATACACHE_USE_SYSTEM_LIB") == "1":
    kw = _flags(["stratacache"], ["stratacache"])
    if "stratacache" not in kw["libraries"]:
        kw["libraries"].insert(0, "stratacache")
    sources: List[str] = []
else:
    kw = _flags(["hiredis", "libmemcached"], ["hiredis", "memcached", "pthread", "m"])
    kw["include_dirs"] = [_rel(ROOT / "core" / "include"), _rel(ROOT / "core" / "src")] + kw[
        "include_dirs"
    ]
    sources = sorted(_rel(p) for p in (ROOT / "core" / "src").rglob("*.c"))

ffibuilder.set_source(
    "stratacache._native",
    '#include "stratacache.h"\n',
    sources=sources,
    extra_compile_args=["-std=gnu99", "-fvisibility=hidden"],
    **kw,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
