"""Bytes written from Python are read by a C program, and the other way round."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import stratacache

from conftest import backend_url, unique

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "build" / "libstratacache.so"


@pytest.fixture(scope="module")
def helper(tmp_path_factory):
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        pytest.skip("no C compiler (cc) to build the interop helper")
    if not LIB.exists():
        pytest.skip(f"{LIB} not built (cmake --build build builds it)")
    exe = tmp_path_factory.mktemp("interop") / "interop_helper"
    subprocess.run([cc, "-std=c99", "-Wall", "-Werror", f"-I{ROOT / 'core' / 'include'}",
                    str(Path(__file__).with_name("interop_helper.c")), "-o", str(exe),
                    f"-L{LIB.parent}", "-lstratacache", f"-Wl,-rpath,{LIB.parent}"], check=True)
    return exe


@pytest.mark.parametrize("backend", ["redis", "memcached"])
def test_python_and_c_share_entries(helper, backend, ns):
    url = backend_url(backend)
    curl = f"{url}?ns={ns}"
    with stratacache.Cache(url, namespace=ns) as c:
        k = unique("interop")
        c.set(k, b"from python \x00\xff")
        out = subprocess.run([str(helper), curl, "get", k], capture_output=True, text=True, check=True)
        assert bytes.fromhex(out.stdout.strip()) == b"from python \x00\xff"
        k2 = unique("interop")
        subprocess.run([str(helper), curl, "set", k2, "from C"], check=True)
        assert c.get(k2) == b"from C"
        out = subprocess.run([str(helper), curl, "get", unique("absent")], capture_output=True, text=True,
                             check=True)
        assert out.stdout.strip() == "MISS"
