"""Config: the documented shape, defaults, errors that name the key, override precedence."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from xcol.cli import main as cli_main
from xcol.config import (
    EXCHANGES,
    Config,
    ConfigError,
    HostPort,
    config_to_dict,
    load_config,
)
from xcol.runtime import pin_cpus
from xcol.sinks import JsonlSink, build_sinks

ROOT = Path(__file__).resolve().parent.parent

BRIEF = """
[runtime]
http = "127.0.0.1:9090"
cpu_affinity = [0]

[[feeds]]
exchange = "binance-usdm"        # binance-spot | binance-usdm | binance-coinm | okx | deribit
symbols = ["BTCUSDT"]
channels = ["depth", "bbo", "trades"]
endpoints = ["wss://fstream.binance.com", "wss://fstream.binance.com"]   # one line each
rest = "https://fapi.binance.com"

[sinks.jsonl]
path = "data/xcol.jsonl"
policy = "blocking"               # or "lossy"
"""

MINIMAL = """
[[feeds]]
exchange = "okx"
symbols = ["BTC-USDT-SWAP"]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "xcol.toml"
    p.write_text(text)
    return p


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None,
         overrides: list[str] | None = None) -> Config:
    return load_config(write(tmp_path, text), env or {}, overrides or [])


def error(tmp_path: Path, text: str, env: dict[str, str] | None = None,
          overrides: list[str] | None = None) -> str:
    with pytest.raises(ConfigError) as ei:
        load(tmp_path, text, env, overrides)
    return str(ei.value)


def test_brief_shape(tmp_path: Path) -> None:
    cfg = load(tmp_path, BRIEF)
    assert cfg.runtime.http == HostPort("127.0.0.1", 9090)
    assert cfg.runtime.cpu_affinity == (0,)
    (feed,) = cfg.feeds
    assert feed.exchange == "binance-usdm" and feed.symbols == ("BTCUSDT",)
    assert feed.endpoints == ("wss://fstream.binance.com",) * 2
    assert cfg.sinks.jsonl is not None and cfg.sinks.jsonl.policy == "blocking"
    assert cfg.sinks.stdout is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.runtime.http = None  # type: ignore[misc]


@pytest.mark.parametrize("exchange", sorted(EXCHANGES))
def test_exchange_defaults(tmp_path: Path, exchange: str) -> None:
    cfg = load(tmp_path, f'[[feeds]]\nexchange = "{exchange}"\nsymbols = ["X-1"]\n')
    feed = cfg.feeds[0]
    spec = EXCHANGES[exchange]
    assert feed.endpoints == (spec.endpoint, spec.endpoint)
    assert feed.rest == spec.rest and feed.name == exchange
    assert feed.channels == ("depth", "bbo", "trades")


def test_runtime_defaults(tmp_path: Path) -> None:
    rt = load(tmp_path, MINIMAL).runtime
    assert rt.realtime is False and rt.gc.mode == "freeze"
    assert rt.rotation.max_age_s == 23.5 * 3600
    assert rt.backoff.cap_s >= rt.backoff.base_s > 0
    assert EXCHANGES["binance-spot"].endpoint == "wss://stream.binance.com:9443"
    assert EXCHANGES["deribit"].rest == "https://www.deribit.com"


@pytest.mark.parametrize(("value", "ok"), [(0, True), (64, True), (16384, True),
                                           (100, False), (-64, False), (1 << 23, False)])
def test_book_ladder_is_zero_or_a_multiple_of_64(tmp_path: Path, value: int, ok: bool) -> None:
    text = MINIMAL + f"\n[runtime]\nbook_ladder = {value}\n"
    if ok:
        assert load(tmp_path, text).runtime.book_ladder == value
    else:
        with pytest.raises(ConfigError, match=r"runtime\.book_ladder: must be 0 or a multiple"):
            load(tmp_path, text)


def test_collector_gives_its_books_the_configured_ladder(tmp_path: Path) -> None:
    from xcol.app import Collector
    cfg = load(tmp_path, MINIMAL + "\n[runtime]\nbook_ladder = 128\n")
    eng = Collector(cfg).feeds[0].engine
    assert eng.book_ladder == 128
    sym = cfg.feeds[0].symbols[0]
    eng.add_instrument(sym)
    assert eng.book(sym).ladder == 128


def test_examples_are_valid() -> None:
    real = load_config(ROOT / "examples" / "xcol.toml", {})
    assert {f.exchange for f in real.feeds} == {"binance-usdm", "binance-spot", "okx",
                                                 "deribit"}
    sim = load_config(ROOT / "examples" / "sim.toml", {})
    assert sim.feeds[0].endpoints == ("ws://127.0.0.1:9001", "ws://127.0.0.1:9002")
    assert sim.feeds[0].rest == "http://127.0.0.1:9001"


@pytest.mark.parametrize(("text", "expected"), [
    ('[runtime]\nhtpp = "1.2.3.4:5"\n', "runtime.htpp: unknown key 'htpp'; did you mean 'http'?"),
    ("[runtime]\nhttp = 9090\n", "runtime.http: expected a \"host:port\" string, got integer"),
    ('[runtime]\nhttp = "localhost"\n', "runtime.http: expected host:port"),
    ('[runtime]\nhttp = "127.0.0.1:99999"\n', "runtime.http: port 99999 out of range"),
    ('[runtime]\nshutdown_deadline_s = "10"\n',
     "runtime.shutdown_deadline_s: expected a number, got string"),
    ("[runtime]\nstale_timeout_s = inf\n",
     "runtime.stale_timeout_s: expected a finite number, got inf"),
    ("[runtime.resync]\nrate_per_s = nan\n",
     "runtime.resync.rate_per_s: expected a finite number, got nan"),
    ("[runtime]\nrealtime = 1\n", "runtime.realtime: expected a boolean, got integer"),
    ('[runtime.gc]\nmode = "frozen"\n', "runtime.gc.mode: unknown value 'frozen'"),
    ("[runtime]\ncpu_affinity = [0, 0]\n", "runtime.cpu_affinity: duplicate CPU id"),
    ('[sinks.jsonl]\npolicy = "lossless"\n', "sinks.jsonl.policy: unknown value 'lossless'"),
    ('[sinks.jsnol]\npath = "x"\n', "sinks.jsnol: unknown sink 'jsnol'; did you mean 'jsonl'?"),
    ('[sinks.kafka]\nbrokers = "x"\n', "sinks.kafka.brokers: unknown key 'brokers'"),
    ("[sinks.jsonl]\nqueue_capacity = 10\nlow_watermark = 10\n",
     "sinks.jsonl.low_watermark: must be below queue_capacity"),
])
def test_errors_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    assert error(tmp_path, MINIMAL + text).startswith(expected)


@pytest.mark.parametrize(("feed", "expected"), [
    ('exchange = "binance"\nsymbols = ["A"]',
     "feeds.0.exchange: unknown value 'binance' (expected one of binance-spot, "),
    ('exchange = "okx"\nsymbols = []', "feeds.0.symbols: must list at least one symbol"),
    ('exchange = "okx"\nsymbols = ["A", ""]', "feeds.0.symbols.1: bad symbol ''"),
    ('exchange = "okx"', "feeds.0.symbols: required key is missing"),
    ('exchange = "okx"\nsymbols = ["A"]\nchannels = ["depth", "trade"]',
     "feeds.0.channels.1: unknown value 'trade'"),
    ('exchange = "okx"\nsymbols = ["A"]\nendpoints = ["https://ws.okx.com"]',
     "feeds.0.endpoints.0: URL 'https://ws.okx.com' must start with ws:// or wss://"),
    ('exchange = "okx"\nsymbols = ["A"]\nrest = "ftp://x"', "feeds.0.rest: URL 'ftp://x'"),
    ('exchange = "okx"\nsymbols = "A"', "feeds.0.symbols: expected an array, got string"),
])
def test_feed_errors(tmp_path: Path, feed: str, expected: str) -> None:
    msg = error(tmp_path, f"[[feeds]]\n{feed}\n")
    assert msg.startswith(expected), msg


def test_whole_config_errors(tmp_path: Path) -> None:
    assert error(tmp_path, "") == "feeds: at least one [[feeds]] table is required"
    assert "TOML syntax error" in error(tmp_path, "[runtime\n")
    twice = MINIMAL + MINIMAL
    assert error(tmp_path, twice).startswith(
        "feeds.1.symbols: okx BTC-USDT-SWAP depth is already collected by feeds.0")
    many = '[[feeds]]\nexchange = "binance-spot"\nchannels = ["depth"]\nsymbols = [' + \
        ",".join(f'"S{i}"' for i in range(1025)) + "]\n"
    assert "over binance-spot's limit of 1024" in error(tmp_path, many)
    deribit = '[[feeds]]\nexchange = "deribit"\nsymbols = ["BTC-PERPETUAL"]\nendpoints = [' + \
        ",".join(['"wss://www.deribit.com"'] * 33) + "]\n"
    assert "over its limit of 32 per IP" in error(tmp_path, deribit)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.toml", {})


def test_env_overrides_and_their_errors(tmp_path: Path) -> None:
    env = {
        "XCOL_RUNTIME__HTTP": "127.0.0.1:9191",
        "XCOL_SINKS__JSONL__POLICY": "lossy",
        "XCOL_FEEDS__0__SYMBOLS": "BTCUSDT, ETHUSDT",
        "XCOL_RUNTIME__GC__THRESHOLDS": "[1000, 10, 10]",
        "XCOL_RUNTIME__REALTIME": "yes",
        "XCOL_CORPUS": "/not/config",  # no "__": belongs to another tool, ignored
    }
    cfg = load(tmp_path, BRIEF, env)
    assert cfg.runtime.http == HostPort("127.0.0.1", 9191)
    assert cfg.sinks.jsonl is not None and cfg.sinks.jsonl.policy == "lossy"
    assert cfg.feeds[0].symbols == ("BTCUSDT", "ETHUSDT")
    assert cfg.runtime.gc.thresholds == (1000, 10, 10) and cfg.runtime.realtime
    msg = error(tmp_path, BRIEF, {"XCOL_RUNTIME__CPU_AFFINITY": "0,x"})
    assert msg.startswith("runtime.cpu_affinity.1 (from env XCOL_RUNTIME__CPU_AFFINITY): "
                          "expected an integer, got 'x'")
    msg = error(tmp_path, BRIEF, {"XCOL_FEEDS__0__SYMBOLS": ""})
    assert msg == ("feeds.0.symbols (from env XCOL_FEEDS__0__SYMBOLS): "
                   "must list at least one symbol")
    assert error(tmp_path, BRIEF, {"XCOL_RUNTIME__HTPP": "x"}).startswith(
        "runtime.htpp (from env XCOL_RUNTIME__HTPP): unknown key 'htpp'; did you mean 'http'?")
    assert "index 3 out of range" in error(tmp_path, BRIEF, {"XCOL_FEEDS__3__SYMBOLS": "A"})
    assert error(tmp_path, BRIEF, {"XCOL_RUNTIME__STALE_TIMEOUT_S": "inf"}).startswith(
        "runtime.stale_timeout_s (from env XCOL_RUNTIME__STALE_TIMEOUT_S): "
        "expected a finite number, got inf")


def test_env_can_add_a_feed_and_a_sink(tmp_path: Path) -> None:
    env = {"XCOL_FEEDS__1__EXCHANGE": "deribit", "XCOL_FEEDS__1__SYMBOLS": "BTC-PERPETUAL",
           "XCOL_SINKS__STDOUT__POLICY": "lossy"}
    cfg = load(tmp_path, BRIEF, env)
    assert [f.exchange for f in cfg.feeds] == ["binance-usdm", "deribit"]
    assert cfg.sinks.stdout is not None and cfg.sinks.stdout.policy == "lossy"
    assert [name for name, _ in cfg.sinks.enabled()] == ["stdout", "jsonl"]


def test_precedence_file_env_flags_set(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, BRIEF)
    env = {"XCOL_RUNTIME__HTTP": "127.0.0.1:1001", "XCOL_SINKS__JSONL__KEEP": "7"}
    assert load_config(path, env).runtime.http == HostPort("127.0.0.1", 1001)
    cfg = load_config(path, env, ["runtime.http=127.0.0.1:1002", "runtime.http=[::1]:1003"])
    assert cfg.runtime.http == HostPort("::1", 1003)  # the last --set wins over env
    assert cfg.sinks.jsonl is not None and cfg.sinks.jsonl.keep == 7

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    # Through the CLI: file < env < --http < --set.
    rc = cli_main(["check-config", "-c", str(path), "--http", "127.0.0.1:1004"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runtime"]["http"] == "127.0.0.1:1004" and out["sinks"]["jsonl"]["keep"] == 7
    rc = cli_main(["check-config", "-c", str(path), "--http", "127.0.0.1:1004",
                   "--set", "runtime.http=off", "--jsonl", str(tmp_path / "j.jsonl")])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runtime"]["http"] is None
    assert out["sinks"]["jsonl"]["path"] == str(tmp_path / "j.jsonl")
    assert out["sinks"]["jsonl"]["low_watermark"] == 100_000  # resolved default


def test_check_config_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XCOL_RUNTIME__HTTP", raising=False)
    path = write(tmp_path, BRIEF.replace('"depth", "bbo"', '"depth", "bob"'))
    assert cli_main(["check-config", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xcol check-config: feeds.0.channels.1: unknown value 'bob'")
    assert cli_main(["check-config", "-c", str(write(tmp_path, BRIEF)), "--set", "nokey"]) == 2
    assert "override must look like key=value" in capsys.readouterr().err


def test_round_trip_through_json(tmp_path: Path) -> None:
    cfg = load(tmp_path, BRIEF)
    data = config_to_dict(cfg)
    assert data["runtime"]["http"] == "127.0.0.1:9090"
    assert json.loads(json.dumps(data)) == data


def test_build_sinks_from_config(tmp_path: Path) -> None:
    cfg = load(tmp_path, BRIEF, overrides=[f"sinks.jsonl.path={tmp_path / 'o.jsonl'}",
                                           "sinks.jsonl.queue_capacity=1000",
                                           "sinks.stdout.enabled=false"])
    ((sink, spec),) = build_sinks(cfg.sinks)
    assert isinstance(sink, JsonlSink) and sink.path == tmp_path / "o.jsonl"
    assert spec.policy == "blocking" and spec.capacity == 1000 and spec.low == 500


def test_pinning_a_missing_cpu_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^runtime\.cpu_affinity: CPU 4096 is not available"):
        pin_cpus([4096])


def test_every_key_is_documented() -> None:
    import typing

    from xcol.config import (
        BackoffConfig,
        FeedConfig,
        GcConfig,
        IlpSinkConfig,
        JsonlSinkConfig,
        KafkaSinkConfig,
        ParquetSinkConfig,
        PostgresSinkConfig,
        RedisSinkConfig,
        ResyncConfig,
        RotationConfig,
        RuntimeConfig,
        ShmSinkConfig,
        StdoutSinkConfig,
    )

    doc = (ROOT / "docs" / "configuration.md").read_text()
    for cls, prefix in [(RuntimeConfig, "runtime."), (GcConfig, "runtime.gc."),
                        (BackoffConfig, "runtime.backoff."),
                        (RotationConfig, "runtime.rotation."),
                        (ResyncConfig, "runtime.resync."), (FeedConfig, "feeds.N."),
                        (StdoutSinkConfig, "sinks.stdout."), (JsonlSinkConfig, "sinks.jsonl."),
                        (ShmSinkConfig, "sinks.shm."),
                        (IlpSinkConfig, "sinks.ilp."),
                        (ParquetSinkConfig, "sinks.parquet."),
                        (KafkaSinkConfig, "sinks.kafka."),
                        (PostgresSinkConfig, "sinks.postgres."),
                        (RedisSinkConfig, "sinks.redis.")]:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]) and hints[f.name] is not HostPort:
                continue
            assert f"`{prefix}{f.name}`" in doc, f"{prefix}{f.name} missing from the docs"


def test_dotted_librdkafka_properties_from_the_file_the_environment_and_set(
        tmp_path: Path) -> None:
    """librdkafka property names hold dots: a file's dotted keys, ``--set`` paths and
    ``XCOL_`` variables all reach the same property name."""
    text = MINIMAL + '[sinks.kafka]\nbootstrap = "127.0.0.1:9092"\n' \
        '[sinks.kafka.properties]\nlinger.ms = 7\n"batch.size" = 1000\n'
    cfg = load(tmp_path, text,
               env={"XCOL_SINKS__KAFKA__PROPERTIES__QUEUE__BUFFERING__MAX__MESSAGES": "99"},
               overrides=["sinks.kafka.properties.compression.type=zstd",
                          "sinks.kafka.properties.linger.ms=5"])
    assert cfg.sinks.kafka is not None
    assert cfg.sinks.kafka.properties == {
        "linger.ms": "5", "batch.size": "1000", "compression.type": "zstd",
        "queue.buffering.max.messages": "99"}
