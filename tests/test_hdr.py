"""xcol._fast.hdr against the ``hdrhistogram`` package (the reference here)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram as RefHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from xcol._fast.hdr import HdrHistogram

REPO = Path(__file__).resolve().parent.parent
PCTS = [0.0, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0]

CONFIGS = [
    (1, 2, 1),
    (1, 1_000_000, 2),
    (1, 3_600_000_000, 3),
    (1000, 10**9, 1),
    (7, 10**12, 4),
    (1, 100_000, 5),
    (1, 2**62, 3),
]


def _pair(lo: int, hi: int, sf: int, values: list[int]) -> tuple[HdrHistogram, RefHistogram]:
    ours = HdrHistogram(lo, hi, sf)
    ref = RefHistogram(lo, hi, sf)
    for v in values:
        ours.record(v)
        ref.record_value(v)
    return ours, ref


def _assert_same(ours: HdrHistogram, ref: RefHistogram) -> None:
    want = ref.get_percentile_to_value_dict(PCTS)  # omits everything when empty
    assert ours.percentiles(PCTS) == [want.get(p, 0) for p in PCTS]
    for p in (0.0, 50.0, 99.9, 100.0):
        assert ours.value_at_percentile(p) == ref.get_value_at_percentile(p)
    assert ours.total_count == ref.get_total_count()
    assert ours.min() == ref.get_min_value()
    assert ours.max() == ref.get_max_value()
    assert ours.mean() == pytest.approx(ref.get_mean_value(), rel=1e-12)


@pytest.mark.parametrize("lo,hi,sf", CONFIGS)
def test_layout_matches_reference(lo: int, hi: int, sf: int) -> None:
    assert HdrHistogram(lo, hi, sf).counts_len == RefHistogram(lo, hi, sf).counts_len


@pytest.mark.parametrize("lo,hi,sf", CONFIGS)
def test_values_and_encoding_match_reference(lo: int, hi: int, sf: int) -> None:
    step = max(1, hi // 997)
    values = [0, 1, lo, hi, hi - 1, *range(0, hi, step)][:1500]
    ours, ref = _pair(lo, hi, sf, values)
    _assert_same(ours, ref)
    assert ours.encode() == ref.encode()


def test_encode_is_read_by_reference() -> None:
    ours = HdrHistogram(1, 60_000_000, 3)
    for v in (3, 3, 3, 17, 250, 251, 4_000, 1_000_000, 59_999_999):
        ours.record(v)
    ours.record_n(42, 1_000)
    blob = ours.encode()
    assert blob.startswith(b"HISTF")
    raw = base64.b64decode(blob)
    zlib.decompress(raw[8:])  # a plain zlib stream after the 8-byte outer header
    ref = RefHistogram.decode(blob)
    assert ref.get_total_count() == ours.total_count == 1_009
    assert ref.get_max_value() == ours.max()
    assert ref.get_min_value() == ours.min()
    want = ref.get_percentile_to_value_dict(PCTS)
    assert ours.percentiles(PCTS) == [want[p] for p in PCTS]


def test_decode_reference_encoding() -> None:
    ref = RefHistogram(1, 10**9, 2)
    for v in (0, 5, 5, 70_000, 123_456_789):
        ref.record_value(v)
    ours = HdrHistogram.decode(ref.encode())
    assert (ours.lowest_trackable_value, ours.highest_trackable_value) == (1, 10**9)
    assert ours.significant_figures == 2
    _assert_same(ours, ref)
    assert ours.encode() == ref.encode()
    assert HdrHistogram.decode(ref.encode().decode("ascii")).total_count == 5


def test_empty() -> None:
    h = HdrHistogram()
    assert h.total_count == 0
    assert (h.min(), h.max(), h.mean()) == (0, 0, 0.0)
    assert h.value_at_percentile(99.0) == 0
    assert h.percentiles([50, 99]) == [0, 0]
    assert h.encode() == RefHistogram(1, 60_000_000, 3).encode()
    assert HdrHistogram.decode(h.encode()).total_count == 0


def test_saturation_and_negative_are_clamped_and_counted() -> None:
    h = HdrHistogram(1, 1_000, 3)
    h.record(5_000)
    h.record_n(10**15, 2)
    h.record(-7)
    assert h.saturated == 3
    assert h.negative == 1
    assert h.total_count == 4
    assert h.count_at(1_000) == 3
    assert h.count_at(0) == 1
    assert h.min() == 0
    assert 1_000 <= h.max() <= 1_001
    assert h.value_at_percentile(100.0) == h.max()


def test_reset() -> None:
    h = HdrHistogram(1, 1_000, 2)
    h.record_n(10, 5)
    h.record(10**6)
    h.reset()
    assert (h.total_count, h.saturated, h.max(), h.min()) == (0, 0, 0, 0)
    h.record(20)
    assert h.min() == h.max() == 20


def test_merge_same_layout() -> None:
    a, ra = _pair(1, 10**6, 3, [1, 2, 3, 500, 10**6])
    b, rb = _pair(1, 10**6, 3, [0, 4, 999_999, 77])
    b.record(10**7)
    rb.record_value(10**6)  # what ours clamps 10**7 to
    a.merge(b)
    ra.add(rb)
    _assert_same(a, ra)
    assert a.saturated == 1


def test_merge_other_layout_records_bucket_values() -> None:
    a = HdrHistogram(1, 10**6, 3)
    b = HdrHistogram(1, 10**9, 2)
    for v in (100, 200, 5_000_000):
        b.record(v)
    a.merge(b)
    assert a.total_count == 3
    assert a.saturated == 1
    assert a.count_at(100) == 1


@pytest.mark.parametrize(
    "args",
    [(0, 100, 3), (1, 1, 3), (1, 100, 0), (1, 100, 6), (10, 15, 2)],
)
def test_bad_configuration(args: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError):
        HdrHistogram(*args)


def test_bad_percentile() -> None:
    h = HdrHistogram()
    with pytest.raises(ValueError):
        h.value_at_percentile(-1.0)
    with pytest.raises(ValueError):
        h.percentiles([50.0, float("nan")])
    h.record(10)
    assert h.value_at_percentile(250.0) == h.max()


@pytest.mark.parametrize(
    "blob",
    [b"", b"!!!!", b"HISTFAAAAA==", base64.b64encode(b"\x1c\x84\x93\x14\x00\x00\x00\x03abc")],
)
def test_decode_rejects_garbage(blob: bytes) -> None:
    with pytest.raises(ValueError):
        HdrHistogram.decode(blob)


def test_decode_rejects_counts_past_layout() -> None:
    ref = RefHistogram(1, 1_000, 1)
    ref.record_value(900)
    raw = base64.b64decode(ref.encode())
    payload = bytearray(zlib.decompress(raw[8:]))
    payload[40:] = bytes(payload[40:]) + b"\x02" * 600  # 600 more counts of 1
    payload[4:8] = (len(payload) - 40).to_bytes(4, "big")
    packed = zlib.compress(bytes(payload))
    blob = base64.b64encode(raw[:4] + len(packed).to_bytes(4, "big") + packed)
    with pytest.raises(ValueError, match="more counts"):
        HdrHistogram.decode(blob)


configs = st.sampled_from([(1, 10**6, 1), (1, 10**6, 2), (1, 10**7, 3), (3, 10**7, 4),
                           (1, 3_600_000_000, 3), (1000, 10**10, 2), (1, 50_000, 5)])


@settings(max_examples=60, deadline=None)
@given(cfg=configs, data=st.data())
def test_property_matches_reference(cfg: tuple[int, int, int], data: st.DataObject) -> None:
    lo, hi, sf = cfg
    values = data.draw(
        st.lists(
            st.one_of(st.integers(0, hi), st.integers(0, 2_000), st.sampled_from([0, 1, hi])),
            max_size=200,
        )
    )
    ours, ref = _pair(lo, hi, sf, values)
    _assert_same(ours, ref)
    assert ours.encode() == ref.encode()
    back = RefHistogram.decode(ours.encode())
    assert back.get_total_count() == len(values)
    assert back.get_percentile_to_value_dict(PCTS) == ref.get_percentile_to_value_dict(PCTS)


PROBE = """\
# distutils: language=c++
from libc.stdint cimport int64_t
from xcol._fast.hdr cimport HdrHistogram

def fill(HdrHistogram h, int64_t n):
    cdef int64_t i
    with nogil:
        for i in range(n):
            h.record(i)
        h.record_n(7, 3)
"""


def test_cimport_record_without_gil(tmp_path: Path) -> None:
    """Another Cython module records through the .pxd, with the GIL released."""
    (tmp_path / "hdr_probe.pyx").write_text(PROBE)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "Cython.Build.Cythonize", "-i", "-3", "-q", "hdr_probe.pyx"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    generated = (tmp_path / "hdr_probe.cpp").read_text()
    # The bodies come from hdr.pxd and are compiled into the probe: no Python call.
    assert "HdrHistogram_record(__pyx_v_h" in generated
    sys.path.insert(0, str(tmp_path))
    try:
        import hdr_probe  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    h = HdrHistogram(1, 10_000, 3)
    hdr_probe.fill(h, 100)
    assert h.total_count == 103
    assert h.count_at(7) == 4
    assert h.max() == 99


def test_record_n_ignores_non_positive_counts() -> None:
    h = HdrHistogram(1, 1_000, 2)
    h.record_n(10, 0)
    h.record_n(10, -5)
    assert h.total_count == 0
    assert h.count_at(10) == 0


def test_pickle_round_trip() -> None:
    import pickle

    h = HdrHistogram(1, 10_000, 3)
    for v in (0, 3, 999, 5_000, 50_000, -1):
        h.record(v)
    back = pickle.loads(pickle.dumps(h))
    assert back.encode() == h.encode()
    assert (back.total_count, back.saturated, back.negative) == (6, 1, 1)
    assert (back.min(), back.max()) == (h.min(), h.max())
    assert back.percentiles(PCTS) == h.percentiles(PCTS)
