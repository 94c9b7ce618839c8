"""Blast mode: pre-framed Binance USD-M depth messages, produced with ``bytes.replace``.

The real depth messages of a capture (those after its REST snapshot) are framed once as
server WebSocket frames into a *template* in which every update id is written as
``<7-char prefix><offset, zero-padded>``.  The prefix is a placeholder; repetition ``r`` of
the chunk is in effect ``template.replace(CUR, prefix(r)).replace(PRV, prefix(r - 1))`` with
``prefix(r) = str(1_000_000 + r)`` (done as one ``bytes.join`` over the template cut at its
placeholders): ids keep their width (frame headers stay valid), grow
from one repetition to the next, and the chain holds across chunks because the first
message's ``pu`` is written with the previous repetition's prefix and the chunk's last
``u`` offset.  Every connection gets the same bytes from repetition 1 on.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from xcol.replay import read_hftbacktest

__all__ = ["BlastChunks", "ws_frame"]

_CUR = b"#CURPFX"
_PRV = b"#PRVPFX"
_RE_IDS = re.compile(rb'"U":(\d+),"u":(\d+),"pu":(\d+)')
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


class BlastChunks:
    """The pre-framed chunk of a USD-M capture and its repetitions.

    :param path: an hftbacktest-format USD-M capture (``<ns> <json>`` lines).
    :param stream: the combined-stream name written in each frame's wrapper.
    :param max_bytes: keep only messages up to this size (0: all), re-chaining ``pu`` over
        the ones left out: smaller frames for frame-rate benchmarks (the books then no
        longer follow the recording, only the chain does).
    """

    def __init__(self, path: str | Path, stream: str | None = None,
                 max_bytes: int = 0) -> None:
        snap: bytes | None = None
        msgs: list[bytes] = []
        for ln in read_hftbacktest(path):
            if ln.error is not None:
                continue
            if ln.data.startswith(b'{"lastUpdateId"'):
                snap = ln.data
            elif b'@depth' in ln.data[:40]:
                msgs.append(ln.data)
        if snap is None or not msgs:
            raise ValueError(f"{path}: no REST snapshot or no depth messages to blast")
        self._snap = json.loads(snap)
        last_id = int(self._snap["lastUpdateId"])
        ids: list[tuple[int, int, int]] = []
        kept: list[bytes] = []
        for m in msgs:
            found = _RE_IDS.search(m)
            if found is None:
                continue
            first, last, prev = (int(x) for x in found.groups())
            if last <= last_id or (max_bytes and len(m) > max_bytes and kept):
                continue
            if ids:  # re-chain over any message left out by max_bytes
                prev = ids[-1][1]
            ids.append((first, last, prev))
            kept.append(m)
        if not kept:
            raise ValueError(f"{path}: no depth message after the snapshot")
        self.symbol = json.loads(kept[0])["data"]["s"]
        base = min(min(t) for t in ids)
        span = max(t[1] for t in ids) - base
        self.width = len(str(span))
        self._base = base
        self._span = span
        self.stream = stream or json.loads(kept[0])["stream"]
        parts: list[bytes] = []
        self.frame_ends: list[int] = []
        total = 0
        for i, (m, (first, last, prev)) in enumerate(zip(kept, ids, strict=True)):
            body = m
            if stream is not None:
                body = b'{"stream":"' + stream.encode() + body[body.index(b'",'):]
            prev_txt = (_PRV + str(span).zfill(self.width).encode() if i == 0
                        else self._id(prev))
            body = _RE_IDS.sub(b'"U":' + self._id(first) + b',"u":' + self._id(last)
                               + b',"pu":' + prev_txt, body, count=1)
            fr = ws_frame(body)
            parts.append(fr)
            total += len(fr)
            self.frame_ends.append(total)
        self.template = b"".join(parts)
        self.frames_per_chunk = len(kept)
        self._cache: dict[int, tuple[bytes, bytes, bytes]] = {}
        # The template cut at its placeholders: a repetition is one bytes.join (a memcpy
        # of the chunk), far cheaper than scanning it with bytes.replace.
        head, _, rest = self.template.partition(_PRV)
        self._head_segs = head.split(_CUR)
        self._segs = rest.split(_CUR)

    def _id(self, v: int) -> bytes:
        return _CUR + str(v - self._base).zfill(self.width).encode()

    @staticmethod
    def prefix(r: int) -> bytes:
        """The id prefix of repetition ``r`` (7 digits)."""
        return str(_PREFIX0 + r).encode()

    def chunk_parts(self, r: int) -> tuple[bytes, bytes, bytes]:
        """Repetition ``r`` (≥ 1) as three pieces to write in order (no extra copy)."""
        got = self._cache.get(r)
        if got is None:
            cur = self.prefix(r)
            got = (cur.join(self._head_segs), self.prefix(r - 1), cur.join(self._segs))
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            self._cache[r] = got
        return got

    def chunk(self, r: int) -> bytes:
        """Repetition ``r`` (≥ 1) of the chunk: ``frames_per_chunk`` frames."""
        return b"".join(self.chunk_parts(r))

    def last_id(self, r: int) -> int:
        """The ``u`` of the last message of repetition ``r``."""
        return int(self.prefix(r) + str(self._span).zfill(self.width).encode())

    def snapshot(self, limit: int = 1000) -> bytes:
        """The capture's REST snapshot, its lastUpdateId mapped into repetition 1."""
        snap = dict(self._snap)
        snap["lastUpdateId"] = int(self.prefix(1) + str(int(snap["lastUpdateId"]) - self._base)
                                   .zfill(self.width).encode())
        snap["bids"] = snap["bids"][:limit]
        snap["asks"] = snap["asks"][:limit]
        return json.dumps(snap, separators=(",", ":")).encode()
