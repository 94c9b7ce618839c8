"""Build policy for xcol's Cython core (metadata lives in pyproject.toml).

Environment switches:

* ``XCOL_DEBUG=1``    -O0 -g, bounds/wraparound/none checks on, ``XCOL_DEBUG``
  invariants compiled in, line tracing, annotated HTML.
* ``XCOL_SANITIZE=1`` AddressSanitizer + UndefinedBehaviorSanitizer.
* ``XCOL_COVERAGE=1`` Cython line tracing for coverage.py.
* ``XCOL_MARCH=...``  target CPU for the simdjson kernels and the core
  (default ``x86-64-v3``, i.e. AVX2, on x86-64; ``native`` for the build
  host; ``none`` to pass no -march).
"""

from __future__ import annotations

import os
import platform
import sys

from setuptools import Extension, setup

CYTHON_DEPENDENCY = "Cython>=3.0.11,<3.4"

try:
    import Cython
    from Cython.Build import cythonize
except ImportError:  # pragma: no cover - the build requirements provide it
    sys.exit(f"xcol needs {CYTHON_DEPENDENCY} to build; pip install it first")

_cy = tuple(int(x) for x in Cython.__version__.split(".")[:2])
if not ((3, 0) <= _cy < (3, 4)):
    sys.exit(f"xcol needs {CYTHON_DEPENDENCY}, found Cython {Cython.__version__}")


def _simdjson_dir() -> str:
    """The folder where the installed pysimdjson keeps simdjson.h/.cpp."""
    try:
        import simdjson
    except ImportError:
        sys.exit("xcol builds against the simdjson sources shipped by pysimdjson; "
                 "pip install pysimdjson first")
    d = os.path.dirname(simdjson.__file__)
    for name in ("simdjson.h", "simdjson.cpp"):
        if not os.path.exists(os.path.join(d, name)):
            sys.exit(f"pysimdjson at {d} does not ship {name}")
    return d


DEBUG = os.environ.get("XCOL_DEBUG") == "1"
SANITIZE = os.environ.get("XCOL_SANITIZE") == "1"
COVERAGE = os.environ.get("XCOL_COVERAGE") == "1"
MARCH = os.environ.get("XCOL_MARCH", "x86-64-v3" if platform.machine() in ("x86_64", "AMD64")
                       else "none")

SJ = _simdjson_dir()
INCLUDES = ["xcol/_fast/includes", "xcol/_fast", SJ]

cflags = ["-std=c++17", "-Wall", "-Wno-unused-function", "-Wno-unused-variable",
          "-Wno-unreachable-code", "-fno-strict-aliasing"]
ldflags: list[str] = []
macros: list[tuple[str, str | None]] = []
if DEBUG:
    cflags += ["-O0", "-g3", "-UNDEBUG"]
    macros += [("XCOL_DEBUG", "1"), ("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]
else:
    cflags += ["-O3", "-DNDEBUG"]
    macros += [("XCOL_DEBUG", "0")]
if COVERAGE and not DEBUG:
    macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]
if SANITIZE:
    cflags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    ldflags += ["-fsanitize=address,undefined"]
if MARCH != "none":
    cflags.append(f"-march={MARCH}")
    if MARCH.startswith("x86-64-v"):
        # simdjson's haswell kernel also needs carry-less multiply.
        cflags.append("-mpclmul")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "nonecheck": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
    "profile": False,
    "linetrace": DEBUG or COVERAGE,
}


def ext(name: str, extra_sources: list[str] | None = None) -> Extension:
    return Extension(
        f"xcol._fast.{name}",
        [f"xcol/_fast/{name}.pyx"] + (extra_sources or []),
        include_dirs=INCLUDES,
        language="c++",
        extra_compile_args=cflags,
        extra_link_args=ldflags,
        define_macros=macros,
    )


SJ_CPP = [os.path.join(SJ, "simdjson.cpp")]
# engine and listener include decode's simdjson declarations; optimised builds
# inline what they use, a -O0 debug build needs simdjson linked in as well.
extensions = [
    ext("book"),
    ext("decode", SJ_CPP),
    ext("engine", SJ_CPP if DEBUG else None),
    ext("hdr"),
    ext("listener", SJ_CPP if DEBUG else None),
    ext("meta", SJ_CPP),
    ext("shm"),
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=DEBUG,
        include_path=["xcol/_fast/includes", "."],
        nthreads=0,
    ),
)
