"""setup.py's choice of CPU target: never a level the build machine cannot run.

``march_flags`` is a pure function of the machine, its /proc/cpuinfo flags and
``XCOL_MARCH``; setup.py is loaded as a module (its ``setup()`` call only runs as a script),
so nothing is built here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The flags line of a Haswell (x86-64-v3), of a Nehalem-class CPU (v2: SSE4.2, no AVX),
# and of a first-generation x86-64 (Core 2 / early Atom: no SSE4.2, no POPCNT).
HASWELL = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush "
           "mmx fxsr sse sse2 ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl "
           "xtopology cpuid pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe "
           "popcnt aes xsave avx f16c rdrand hypervisor lahf_lm abm bmi1 avx2 smep bmi2 erms")
NEHALEM = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush "
           "mmx fxsr sse sse2 ht syscall nx rdtscp lm constant_tsc pni ssse3 cx16 sse4_1 "
           "sse4_2 popcnt lahf_lm")
CORE2 = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov mmx fxsr sse sse2 " \
        "ht syscall nx lm constant_tsc pni ssse3 cx16 lahf_lm"


@pytest.fixture(scope="module")
def setup_py() -> ModuleType:
    spec = importlib.util.spec_from_file_location("xcol_setup_py", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def flags(line: str) -> frozenset[str]:
    return frozenset(line.split())


def test_avx2_machine_gets_x86_64_v3(setup_py: ModuleType) -> None:
    out, why = setup_py.march_flags("x86_64", flags(HASWELL))
    assert out == ["-march=x86-64-v3", "-mpclmul"]
    assert "AVX2" in why


def test_machine_without_avx2_falls_back_to_v2(setup_py: ModuleType) -> None:
    out, why = setup_py.march_flags("x86_64", flags(NEHALEM))
    assert out == ["-march=x86-64-v2"]  # no pclmulqdq on this CPU: no -mpclmul either
    assert "avx2" in why and "bmi2" in why and "fma" in why
    # a v3 CPU missing one v3 feature (BMI2, as some Pentium/Celeron parts) is v2 too
    out, why = setup_py.march_flags("x86_64", flags(HASWELL) - {"bmi2"})
    assert out == ["-march=x86-64-v2", "-mpclmul"] and why.endswith("lacks bmi2 (x86-64-v3)")
    # the kernel hides "avx" when the OS does not save the AVX state
    assert setup_py.march_flags("x86_64", flags(HASWELL) - {"avx"})[0][0] == "-march=x86-64-v2"


def test_machine_without_sse4_2_gets_the_baseline(setup_py: ModuleType) -> None:
    out, why = setup_py.march_flags("x86_64", flags(CORE2))
    assert out == ["-march=x86-64"]
    assert "popcnt" in why and "sse4_2" in why
    # unknown flags (no /proc/cpuinfo) on x86-64: the baseline, never a guess upwards
    out, why = setup_py.march_flags("AMD64", None)
    assert out == ["-march=x86-64"] and "XCOL_MARCH" in why


def test_other_machines_and_the_override(setup_py: ModuleType) -> None:
    assert setup_py.march_flags("aarch64", None)[0] == []
    assert setup_py.march_flags("x86_64", flags(CORE2), "x86-64-v3")[0] == [
        "-march=x86-64-v3", "-mpclmul"]
    assert setup_py.march_flags("x86_64", flags(HASWELL), "native") == (
        ["-march=native"], "XCOL_MARCH")
    assert setup_py.march_flags("x86_64", flags(HASWELL), "none")[0] == []
    # an empty XCOL_MARCH is no override
    assert setup_py.march_flags("x86_64", flags(NEHALEM), "")[0] == ["-march=x86-64-v2"]


def test_cpu_flags_reads_the_first_flags_line(setup_py: ModuleType, tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: {NEHALEM}\n"
                    f"bugs\t\t: spectre_v1\n\nprocessor\t: 1\nflags\t\t: {HASWELL}\n")
    assert setup_py.cpu_flags(str(info)) == flags(NEHALEM)
    assert setup_py.cpu_flags(str(tmp_path / "absent")) is None
    (tmp_path / "empty").write_text("processor\t: 0\n")
    assert setup_py.cpu_flags(str(tmp_path / "empty")) is None
