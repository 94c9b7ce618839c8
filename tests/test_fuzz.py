"""Seeded mutation fuzzing of real messages: no crash, every frame accounted for.

Real messages of every capture are mutated (byte flips, deletions, insertions,
digit changes, truncations, duplicated slices, oversized numbers) and fed to
an engine whose books are live.  Each frame must either be processed (a result
code >= 0, no error text) or be refused with -1, one more counted error and a
readable reason; at the end every engine counter must equal the number of
frames that got the matching result code.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from capture import CAPTURES, frames, need, replay

from xcol._fast.decode import Decoder
from xcol._fast.engine import Engine

SEED = 20240808
MUTATIONS_PER_CAPTURE = 600
KNOWN_CODES = {-1, 0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16}
JSONISH = b'{}[]",:.-+eE0123456789 \\\x00tfn'


def mutate(rnd: random.Random, frame: bytes) -> tuple[str, bytes]:
    """One random mutation of ``frame``, named."""
    n = len(frame)
    pos = rnd.randrange(max(n, 1))
    kind = rnd.choice(["flip", "delete", "insert", "digit", "swap", "truncate", "repeat",
                       "bignum", "negative", "bitflip"])
    if kind == "flip":
        return kind, frame[:pos] + bytes([rnd.randrange(256)]) + frame[pos + 1:]
    if kind == "bitflip":
        return kind, frame[:pos] + bytes([frame[pos] ^ (1 << rnd.randrange(8))]) + frame[pos + 1:]
    if kind == "delete":
        return kind, frame[:pos] + frame[pos + rnd.randint(1, 8):]
    if kind == "insert":
        junk = bytes(rnd.choice(JSONISH) for _ in range(rnd.randint(1, 4)))
        return kind, frame[:pos] + junk + frame[pos:]
    if kind == "truncate":
        return kind, frame[:pos]
    if kind == "repeat":
        end = min(n, pos + rnd.randint(1, 40))
        return kind, frame[:end] + frame[pos:end] + frame[end:]
    digits = [i for i, c in enumerate(frame) if 48 <= c <= 57]
    if not digits:
        return "truncate", frame[:pos]
    at = rnd.choice(digits)
    if kind == "digit":
        return kind, frame[:at] + bytes([48 + rnd.randrange(10)]) + frame[at + 1:]
    if kind == "swap":
        if at + 1 < n and 48 <= frame[at + 1] <= 57:
            return kind, frame[:at] + frame[at + 1:at + 2] + frame[at:at + 1] + frame[at + 2:]
        return kind, frame[:at] + b"7" + frame[at + 1:]
    if kind == "bignum":
        return kind, frame[:at] + b"1234567890123456789012345" + frame[at:]
    return kind, frame[:at] + b"-" + frame[at:]  # negative


def check_frame(e: Engine, frame: bytes, outcomes: Counter[int]) -> int:
    before = e.errors_total
    code = e.feed(frame)  # must never raise
    assert code in KNOWN_CODES, (code, frame[:200])
    if code == -1:
        assert e.errors_total == before + 1, ("refused but not counted", frame[:200])
        err = e.last_error()
        assert isinstance(err, str) and " at " in err, (err, frame[:200])
    else:
        assert e.errors_total == before, ("counted an error but returned", code, frame[:200])
        assert e.last_error() is None, (e.last_error(), frame[:200])
    outcomes[code] += 1
    return code


def assert_reconciled(
    start: dict[str, Any], end: dict[str, Any], outcomes: Counter[int], fed: int,
) -> None:
    def d(key: str) -> int:
        return int(end[key] - start[key])

    errors = sum(end["errors"].values()) - sum(start["errors"].values())
    book = {k: end["book"][k] - start["book"][k] for k in end["book"]}
    assert d("messages") == fed == sum(outcomes.values())
    assert errors == outcomes[-1]
    assert d("bbo") == outcomes[10]
    assert d("control") == outcomes[12]
    assert d("ignored") == outcomes[13]
    assert d("unknown_instrument") == outcomes[14]
    assert d("book_events") == sum(outcomes[c] for c in range(8))
    names = ["applied", "buffered", "duplicate", "gap", "checksum", "unsynced", "bad_number",
             "snapshot"]
    assert [book[k] for k in names] == [outcomes[c] for c in range(8)]
    assert d("bad_numbers") == outcomes[6] + outcomes[16]


@pytest.mark.corpus
@pytest.mark.parametrize("name", [c.name for c in CAPTURES])
def test_mutated_real_messages(name: str) -> None:
    cap = need(name)
    items = [f for f in frames(cap.path)]
    # Warm the engine on the head of the capture so books are live, then fuzz
    # with messages from the rest of it.
    head = min(len(items) // 2, 3000)
    res = replay(items[:head], cap.market)
    e = res.engine
    pool = [f.body for f in items[head:head + 4000] if not f.rest] or \
        [f.body for f in items if not f.rest]
    rnd = random.Random(f"{SEED}-{name}")
    outcomes: Counter[int] = Counter()
    kinds: Counter[str] = Counter()
    start = e.counters()
    fed = 0
    for _ in range(MUTATIONS_PER_CAPTURE):
        kind, bad = mutate(rnd, rnd.choice(pool))
        kinds[kind] += 1
        check_frame(e, bad, outcomes)
        fed += 1
        if rnd.random() < 0.3:  # interleave untouched messages
            check_frame(e, rnd.choice(pool), outcomes)
            fed += 1
    assert_reconciled(start, e.counters(), outcomes, fed)
    assert outcomes[-1] > MUTATIONS_PER_CAPTURE // 4, outcomes  # most mutations are caught
    assert len(kinds) == 10


@pytest.mark.corpus
@pytest.mark.parametrize("venue", ["binance", "okx", "deribit"])
def test_decoders_survive_every_capture_mutated(venue: str) -> None:
    # Cross-venue too: a decoder fed another venue's (mutated) frames must refuse cleanly.
    rnd = random.Random(f"{SEED}-decoder-{venue}")
    d = Decoder(venue)
    pool: list[bytes] = []
    for cap in CAPTURES:
        if cap.path.exists():
            items = frames(cap.path)
            pool += [f.body for f in rnd.sample(items, min(200, len(items)))]
    if not pool:
        pytest.skip("no captures")
    for _ in range(3000):
        _, bad = mutate(rnd, rnd.choice(pool))
        kind = d.decode_frame(bad)
        assert kind in (-1, 1, 2, 3, 4, 5, 6, 7)
        if kind == -1:
            assert d.error()
        else:
            assert d.error() is None
            d.event()  # must be readable whatever was decoded


def test_mutated_deribit_quotes() -> None:
    """The corpus has no Deribit quote: mutate hand-written ones (both sides, an empty
    side as null and as zeros, exponents) against a live engine."""
    quotes = [
        b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.BTC-PERPETUAL",'
        b'"data":{"timestamp":1550658624149,"instrument_name":"BTC-PERPETUAL",'
        b'"best_bid_price":3914.97,"best_bid_amount":40.0,"best_ask_price":3996.61,'
        b'"best_ask_amount":50.0}}}',
        b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.BTC-PERPETUAL",'
        b'"data":{"timestamp":1550658624150,"instrument_name":"BTC-PERPETUAL",'
        b'"best_bid_price":null,"best_bid_amount":null,"best_ask_price":3996.61,'
        b'"best_ask_amount":5e1}}}',
        b'{"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.BTC-PERPETUAL",'
        b'"data":{"best_ask_amount":0,"best_ask_price":0,"best_bid_amount":1e-05,'
        b'"best_bid_price":3914.5,"instrument_name":"BTC-PERPETUAL","timestamp":1550658624151}}}',
    ]
    e = Engine("deribit")
    e.add_instrument("BTC-PERPETUAL")
    rnd = random.Random(f"{SEED}-deribit-quote")
    outcomes: Counter[int] = Counter()
    start = e.counters()
    fed = 0
    for _ in range(MUTATIONS_PER_CAPTURE):
        _, bad = mutate(rnd, rnd.choice(quotes))
        check_frame(e, bad, outcomes)
        fed += 1
        if rnd.random() < 0.3:
            assert check_frame(e, rnd.choice(quotes), outcomes) == 10
            fed += 1
    assert_reconciled(start, e.counters(), outcomes, fed)
    assert outcomes[-1] > MUTATIONS_PER_CAPTURE // 4 and outcomes[10] > 100, outcomes


@pytest.mark.corpus
def test_mutated_rest_snapshots() -> None:
    cap = need("usdm")
    body = next(f.body for f in frames(cap.path) if f.rest)
    rnd = random.Random(f"{SEED}-rest")
    seen: Counter[int] = Counter()
    for _ in range(300):
        e = Engine(cap.market)
        e.add_instrument("BTCUSDT")
        _, bad = mutate(rnd, body)
        code = e.feed_snapshot("BTCUSDT", bad)
        seen[code] += 1
        assert code in (-1, 3, 6, 7)
        assert (e.errors_total == 1) == (code == -1)
        book = e.book("BTCUSDT")
        if code in (-1, 6):  # refused: nothing loaded
            assert not book.synced and book.depth() == (0, 0)
    assert seen[-1] > 0 and seen[7] > 0


# ------------------------------------------- the engine's counters on their own


def engine_outcomes(c: dict[str, Any]) -> int:
    """Frames the engine's own counters account for (each frame has exactly one outcome)."""
    return int(
        sum(c["errors"].values()) + c["book_events"] + c["bbo"] + c["trade_frames"]
        + c["rest_frames"] + c["control"]
        + c["ignored"] + c["unknown_instrument"] + c["bad_numbers"] - c["book"]["bad_number"]
    )


def test_engine_counters_account_for_a_rest_body_fed_as_a_frame() -> None:
    # feed() answers 15 for a REST snapshot body; that frame must land in some counter.
    e = Engine("binance-spot")
    e.add_instrument("BTCUSDT")
    frames_ = [
        b'{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[],"a":[]}',
        b'{"u":1,"s":"BTCUSDT","b":"1.00","B":"2","a":"1.01","A":"3"}',
        b'{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1.00","q":"2","T":1,"m":true}',
        b'{"result":null,"id":1}',
        b'{"e":"kline","E":1,"s":"BTCUSDT","k":{}}',
        b'{"e":"trade","E":1,"s":"ETHUSDT","t":1,"p":"1.00","q":"2","T":1,"m":true}',
        b"{",
        b'{"lastUpdateId":5,"bids":[],"asks":[]}',
    ]
    codes = [e.feed(f) for f in frames_]
    assert codes == [1, 10, 11, 12, 13, 14, -1, 15]
    c = e.counters()
    assert c["messages"] == len(frames_)
    assert engine_outcomes(c) == c["messages"], c


def test_engine_counters_account_for_multi_trade_frames() -> None:
    # One OKX frame with two trades is one message: frame and print counts must reconcile.
    e = Engine("okx")
    e.add_instrument("UNI-USD-SWAP")
    frame = (b'{"arg":{"channel":"trades","instId":"UNI-USD-SWAP"},"data":['
             b'{"instId":"UNI-USD-SWAP","tradeId":"12883020","px":"5.123","sz":"100",'
             b'"side":"sell","ts":"1652459215150"},'
             b'{"instId":"UNI-USD-SWAP","tradeId":"12883021","px":"5.124","sz":"2",'
             b'"side":"buy","ts":"1652459215151"}]}')
    assert e.feed(frame) == 11
    c = e.counters()
    assert c["messages"] == 1
    assert engine_outcomes(c) == c["messages"], c
