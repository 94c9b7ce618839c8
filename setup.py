"""Build policy for xcol's Cython core (metadata lives in pyproject.toml).

Environment switches:

* ``XCOL_DEBUG=1``    -O0 -g, bounds/wraparound/none checks on, ``XCOL_DEBUG``
  invariants compiled in, line tracing, annotated HTML.
* ``XCOL_SANITIZE=1`` AddressSanitizer + UndefinedBehaviorSanitizer.
* ``XCOL_COVERAGE=1`` Cython line tracing for coverage.py.
* ``XCOL_MARCH=...``  target CPU for the simdjson kernels and the core
  (``native`` for the build host; ``none`` to pass no -march).  Default on
  x86-64: the highest of ``x86-64-v3`` (AVX2, simdjson's haswell kernel),
  ``x86-64-v2`` (SSE4.2) and ``x86-64`` that the build machine's CPU supports
  (its /proc/cpuinfo flags), so a build never emits instructions the machine
  that built it cannot run; elsewhere none.  Set it explicitly to build for
  another machine.
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


#: /proc/cpuinfo flags each x86-64 micro-architecture level needs (x86-64 psABI; the
#: kernel names LZCNT "abm", and hides "avx" unless the OS saves the AVX state, which
#: covers OSXSAVE).  A level's list includes the levels below it.
X86_64_V2 = frozenset({"cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"})
X86_64_V3 = X86_64_V2 | {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe"}


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str] | None:
    """The CPU feature flags of the build machine (the first ``flags`` line of
    ``path``), or None when they cannot be read (not Linux)."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        return None
    return None


def march_flags(machine: str, flags: frozenset[str] | None,
                override: str | None = None) -> tuple[list[str], str]:
    """The -march compiler flags for a build, and why they were chosen.

    :param machine: ``platform.machine()`` of the build host.
    :param flags: its CPU flags (:func:`cpu_flags`; None: unknown).
    :param override: ``XCOL_MARCH`` (``none``: no -march; anything else is passed as is).
    """
    if override:
        march, why = override, "XCOL_MARCH"
    elif machine not in ("x86_64", "AMD64"):
        march, why = "none", f"{machine}: the compiler's default target"
    elif flags is None:
        march, why = "x86-64", "CPU flags unknown (no /proc/cpuinfo); set XCOL_MARCH"
    elif X86_64_V3 <= flags:
        march, why = "x86-64-v3", "the build CPU has AVX2/BMI2/FMA"
    elif X86_64_V2 <= flags:
        missing = " ".join(sorted(X86_64_V3 - flags))
        march, why = "x86-64-v2", f"the build CPU lacks {missing} (x86-64-v3)"
    else:
        missing = " ".join(sorted(X86_64_V2 - flags))
        march, why = "x86-64", f"the build CPU lacks {missing} (x86-64-v2)"
    if march == "none":
        return [], why
    out = [f"-march={march}"]
    # simdjson's haswell and westmere kernels also need carry-less multiply; -march does
    # not imply it at these levels.  Only when the CPU has it (or the user chose the level)
    if march in ("x86-64-v2", "x86-64-v3") and (override or "pclmulqdq" in (flags or ())):
        out.append("-mpclmul")
    return out, why


DEBUG = os.environ.get("XCOL_DEBUG") == "1"
SANITIZE = os.environ.get("XCOL_SANITIZE") == "1"
COVERAGE = os.environ.get("XCOL_COVERAGE") == "1"
MARCH_FLAGS, MARCH_WHY = march_flags(platform.machine(), cpu_flags(),
                                     os.environ.get("XCOL_MARCH"))

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
cflags += MARCH_FLAGS

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

if __name__ == "__main__":  # tests import this file for march_flags without building
    print(f"xcol: CPU target {' '.join(MARCH_FLAGS) or '(compiler default)'}: {MARCH_WHY}",
          file=sys.stderr)
    setup(
        ext_modules=cythonize(
            extensions,
            compiler_directives=directives,
            annotate=DEBUG,
            include_path=["xcol/_fast/includes", "."],
            nthreads=0,
        ),
    )
