"""The sdist is complete: built with `python -m build --sdist`, it holds every
file the extension build needs, and `pip install` of it into a fresh venv
(normal build isolation: setuptools, wheel and cffi come from the package
index or the pip cache) gives a working package with py.typed.

Slow (a venv and a full compile): runs when STRATA_TEST_SDIST=1, which
scripts/test-python.sh sets unless told otherwise.
"""
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.sdist,
    pytest.mark.skipif(os.environ.get("STRATA_TEST_SDIST") != "1",
                       reason="set STRATA_TEST_SDIST=1 (scripts/test-python.sh does) to build and install the sdist"),
]

SMOKE = """
import pathlib, stratacache
with stratacache.Cache("memory://sdist", ttl=60) as c:
    c.set("k", b"v")
    assert c.get("k") == b"v", c.get("k")
    assert c.get_or_load("x", lambda k: b"loaded") == b"loaded"
pkg = pathlib.Path(stratacache.__file__).parent
assert (pkg / "py.typed").is_file(), "py.typed not installed"
assert "site-packages" in str(pkg), pkg
print(stratacache.__version__)
"""


def run(*cmd, cwd=None):
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout


def test_sdist_installs_in_a_fresh_venv(tmp_path):
    pytest.importorskip("build", reason="the 'build' package makes the sdist (pip install build)")
    run(sys.executable, "-m", "build", "--sdist", "--outdir", tmp_path / "dist", ROOT)
    (sdist,) = (tmp_path / "dist").glob("stratacache-*.tar.gz")

    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    needed = {"setup.py", "pyproject.toml", "bindings/stratacache.cdef", "core/include/stratacache.h",
              "python/stratacache/py.typed", "python/stratacache/_build.py"}
    needed |= {str(p.relative_to(ROOT)) for p in (ROOT / "core" / "src").rglob("*.[ch]")}
    assert needed <= names, f"missing from the sdist: {sorted(needed - names)}"
    assert not [n for n in names if n.startswith(("build/", "python/tests/", ".venv")) or n.endswith(".so")]

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    py = venv / "bin" / "python"
    env_pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run(*env_pip, sdist)
    version = run(py, "-c", SMOKE, cwd=tmp_path).strip()
    import stratacache
    assert version == stratacache.__version__
