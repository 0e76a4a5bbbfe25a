"""Build for the stratacache Python package (cffi API mode).

The C core is compiled into the extension; set STRATACACHE_USE_SYSTEM_LIB=1 to
link an installed libstratacache instead.
"""
import re
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
_header = (ROOT / "core" / "include" / "stratacache.h").read_text(encoding="utf-8")
VERSION = ".".join(
    re.search(r"#define STRATA_VERSION_%s (\d+)" % part, _header).group(1)
    for part in ("MAJOR", "MINOR", "PATCH")
)

setup(
    name="stratacache",
    version=VERSION,
    description="Caching policy over Redis, Memcached or an embedded store",
    python_requires=">=3.9",
    package_dir={"": "python"},
    packages=["stratacache"],
    package_data={"stratacache": ["py.typed"]},
    setup_requires=["cffi>=1.15"],
    install_requires=["cffi>=1.15", "typing_extensions>=4.0; python_version<'3.10'"],
    cffi_modules=["python/stratacache/_build.py:ffibuilder"],
    entry_points={
        # the operator command (stratacache/cli.py)
        "console_scripts": ["stratacache=stratacache.cli:main"],
        # dogpile.cache finds its backends by this entry point (stratacache/dogpile.py)
        "dogpile.cache": ["stratacache = stratacache.dogpile:StrataBackend"],
    },
    # the optional Prometheus collector (stratacache/metrics.py)
    extras_require={"prometheus": ["prometheus_client"]},
    zip_safe=False,
)
