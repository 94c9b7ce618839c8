"""Blast mode: pre-framed Binance USD-M messages, produced with ``bytes.join``.

The real messages of a capture (those after its REST snapshot) are framed once as server
WebSocket frames into a *template* in which every id that must grow is written as
``<7-char prefix><offset, zero-padded>``: the depth update ids ``U``/``u``/``pu``, the
bookTicker's update id ``u`` (the same sequence) and the trade id ``t`` (its own).  The
prefix is a placeholder; repetition ``r`` of the chunk is in effect
``template.replace(CUR, prefix(r)).replace(PRV, prefix(r - 1))`` with
``prefix(r) = str(1_000_000 + r)`` (done as one ``bytes.join`` over the template cut at its
placeholders): ids keep their width (frame headers stay valid), grow from one repetition
to the next, and the depth chain holds across chunks because the first depth message's
``pu`` is written with the previous repetition's prefix and the chunk's last depth ``u``
offset.  Every connection gets the same bytes from repetition 1 on.

A template holds the messages of some *kinds* (``depth``, ``bookTicker``, ``trade``) in
the capture's order: depth alone, or the capture's mix as USD-M routes it (depth and
bookTicker on ``/public``, trades on ``/market``).  The ids are mapped the same way for
every template of a capture, so they share one REST snapshot.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from pathlib import Path

from xcol.replay import read_hftbacktest

__all__ = ["KINDS", "BlastChunks", "ws_frame"]

#: the message kinds a blast can carry, by their combined-stream suffix
KINDS = ("depth", "bookTicker", "trade")

_CUR = b"#CURPFX"
_PRV = b"#PRVPFX"
_RE_IDS = re.compile(rb'"U":(\d+),"u":(\d+),"pu":(\d+)')
_RE_U = re.compile(rb'"u":(\d+)')
_RE_T = re.compile(rb'"t":(\d+)')
_PREFIX0 = 1_000_000


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """An unmasked, final server frame carrying ``payload``."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, n))
    elif n < 1 << 16:
        head = bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return head + payload


def _kind(data: bytes) -> str | None:
    head = data[:48]
    if b"@depth" in head:
        return "depth"
    if b"@bookTicker" in head:
        return "bookTicker"
    if b"@trade" in head:
        return "trade"
    return None


class _Capture:
    """The blastable messages of a capture after its snapshot, with their ids."""

    def __init__(self, path: str | Path, max_bytes: int) -> None:
        snap: bytes | None = None
        seen: list[tuple[str, bytes]] = []
        for ln in read_hftbacktest(path):
            if ln.error is not None:
                continue
            if ln.data.startswith(b'{"lastUpdateId"'):
                snap = ln.data
                continue
            kind = _kind(ln.data)
            if kind is not None:
                seen.append((kind, ln.data))
        if snap is None or not any(k == "depth" for k, _ in seen):
            raise ValueError(f"{path}: no REST snapshot or no depth messages to blast")
        self.snap = json.loads(snap)
        last_id = int(self.snap["lastUpdateId"])
        #: (kind, message, ids): depth (U, u, pu), bookTicker (u,), trade (t,)
        self.msgs: list[tuple[str, bytes, tuple[int, ...]]] = []
        last_u = -1
        for kind, m in seen:
            if kind == "depth":
                found = _RE_IDS.search(m)
                if found is None:
                    continue
                first, last, prev = (int(x) for x in found.groups())
                if last <= last_id or (max_bytes and len(m) > max_bytes and last_u >= 0):
                    continue
                if last_u >= 0:   # re-chain over any message left out by max_bytes
                    prev = last_u
                last_u = last
                self.msgs.append((kind, m, (first, last, prev)))
            else:
                # bookTickers after the snapshot's update id; trades from the first
                # depth event blasted on (the capture's order)
                found = (_RE_U if kind == "bookTicker" else _RE_T).search(m)
                if found is None:
                    continue
                v = int(found.group(1))
                if v <= last_id if kind == "bookTicker" else last_u < 0:
                    continue
                self.msgs.append((kind, m, (v,)))
        if last_u < 0:
            raise ValueError(f"{path}: no depth message after the snapshot")
        uids = [v for k, _, ids in self.msgs if k != "trade" for v in ids]
        tids = [ids[0] for k, _, ids in self.msgs if k == "trade"]
        self.base_u = min(uids)
        self.width_u = len(str(max(uids) - self.base_u))
        self.span_d = last_u - self.base_u          # the last depth u, as an offset
        self.base_t = min(tids) if tids else 0
        self.width_t = len(str(max(tids) - self.base_t)) if tids else 1
        first_depth = next(m for k, m, _ in self.msgs if k == "depth")
        self.symbol = str(json.loads(first_depth)["data"]["s"])
        self.stream = str(json.loads(first_depth)["stream"])

    def uid(self, v: int) -> bytes:
        return _CUR + str(v - self.base_u).zfill(self.width_u).encode()

    def tid(self, v: int) -> bytes:
        return _CUR + str(v - self.base_t).zfill(self.width_t).encode()


@functools.lru_cache(maxsize=4)
def _capture(path: str, max_bytes: int) -> _Capture:
    return _Capture(path, max_bytes)


class BlastChunks:
    """The pre-framed chunk of a USD-M capture and its repetitions.

    :param path: an hftbacktest-format USD-M capture (``<ns> <json>`` lines).
    :param stream: the combined-stream name written in each depth frame's wrapper.
    :param max_bytes: keep only depth messages up to this size (0: all), re-chaining ``pu``
        over the ones left out: smaller frames for frame-rate benchmarks (the books then no
        longer follow the recording, only the chain does).
    :param kinds: which messages to carry (see :data:`KINDS`), in the capture's order.
    """

    def __init__(self, path: str | Path, stream: str | None = None, max_bytes: int = 0,
                 kinds: Iterable[str] = ("depth",)) -> None:
        want = set(kinds)
        if not want or want - set(KINDS):
            raise ValueError(f"blast kinds must be some of {KINDS}, got {sorted(want)}")
        cap = _capture(str(path), max_bytes)
        self._cap = cap
        self.kinds = tuple(k for k in KINDS if k in want)
        self.symbol = cap.symbol
        self.width = cap.width_u
        self._base = cap.base_u
        self._span = cap.span_d
        self.stream = stream or cap.stream
        parts: list[bytes] = []
        self.frame_ends: list[int] = []
        #: index of the first depth frame (-1: none); a blast waits there for the snapshot
        self.first_depth = -1
        total = 0
        for kind, m, ids in cap.msgs:
            if kind not in want:
                continue
            body = m
            if kind == "depth":
                first, last, prev = ids
                if stream is not None:
                    body = b'{"stream":"' + stream.encode() + body[body.index(b'",'):]
                if self.first_depth < 0:
                    self.first_depth = len(self.frame_ends)
                    prev_txt = _PRV + str(cap.span_d).zfill(cap.width_u).encode()
                else:
                    prev_txt = cap.uid(prev)
                body = _RE_IDS.sub(b'"U":' + cap.uid(first) + b',"u":' + cap.uid(last)
                                   + b',"pu":' + prev_txt, body, count=1)
            elif kind == "bookTicker":
                body = _RE_U.sub(b'"u":' + cap.uid(ids[0]), body, count=1)
            else:
                body = _RE_T.sub(b'"t":' + cap.tid(ids[0]), body, count=1)
            fr = ws_frame(body)
            parts.append(fr)
            total += len(fr)
            self.frame_ends.append(total)
        if not parts:
            raise ValueError(f"{path}: no {'/'.join(self.kinds)} message after the snapshot")
        self.template = b"".join(parts)
        self.frames_per_chunk = len(self.frame_ends)
        #: this template's part of the capture's whole mix (depth alone counts as 1): a
        #: connection blasting it takes this share of a blast's rate and count
        self.share = (1.0 if self.kinds == ("depth",)
                      else self.frames_per_chunk / len(cap.msgs))
        self._cache: dict[int, tuple[bytes, bytes, bytes]] = {}
        # The template cut at its placeholders: a repetition is one bytes.join (a memcpy
        # of the chunk), far cheaper than scanning it with bytes.replace.
        head, found, rest = self.template.partition(_PRV)
        self._head_segs = head.split(_CUR)
        self._segs = rest.split(_CUR) if found else []

    @staticmethod
    def prefix(r: int) -> bytes:
        """The id prefix of repetition ``r`` (7 digits)."""
        return str(_PREFIX0 + r).encode()

    def chunk_parts(self, r: int) -> tuple[bytes, bytes, bytes]:
        """Repetition ``r`` (≥ 1) as three pieces to write in order (no extra copy)."""
        got = self._cache.get(r)
        if got is None:
            cur = self.prefix(r)
            if self._segs:
                got = (cur.join(self._head_segs), self.prefix(r - 1), cur.join(self._segs))
            else:
                got = (cur.join(self._head_segs), b"", b"")
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            self._cache[r] = got
        return got

    def chunk(self, r: int) -> bytes:
        """Repetition ``r`` (≥ 1) of the chunk: ``frames_per_chunk`` frames."""
        return b"".join(self.chunk_parts(r))

    def last_id(self, r: int) -> int:
        """The ``u`` of the last depth message of repetition ``r``."""
        return int(self.prefix(r) + str(self._span).zfill(self.width).encode())

    def snapshot(self, limit: int = 1000) -> bytes:
        """The capture's REST snapshot, its lastUpdateId mapped into repetition 1."""
        snap = dict(self._cap.snap)
        snap["lastUpdateId"] = int(self.prefix(1) + str(int(snap["lastUpdateId"]) - self._base)
                                   .zfill(self.width).encode())
        snap["bids"] = snap["bids"][:limit]
        snap["asks"] = snap["asks"][:limit]
        return json.dumps(snap, separators=(",", ":")).encode()
