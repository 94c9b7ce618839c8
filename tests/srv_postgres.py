"""A throwaway PostgreSQL cluster for tests and benchmarks.

``initdb`` into a fresh temporary directory, ``pg_ctl start`` on a free port of 127.0.0.1
with the unix socket in the same directory, ``pg_ctl stop`` and ``rm -r`` at the end.  The
server binaries come from ``XCOL_PG_BIN`` or the newest ``/usr/lib/postgresql/*/bin`` (the
Debian ``postgresql`` package).  PostgreSQL refuses to run as root: when we are root, the
cluster belongs to the ``postgres`` user (or ``nobody``) and its commands run as that user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["PgCluster", "find_pg_bin", "free_port", "pg_cluster"]


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or ``None``."""
    env = os.environ.get("XCOL_PG_BIN")
    cands = [Path(env)] if env else sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    for d in cands:
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            return d
    return None


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists "
                       "to own the test cluster")


class PgCluster:
    """One cluster in its own temporary directory (see the module docstring).

    :param bin_dir: PostgreSQL server binaries.
    :param settings: extra ``-c name=value`` server settings.
    """

    def __init__(self, bin_dir: Path, settings: dict[str, str] | None = None) -> None:
        self.bin_dir = bin_dir
        self.settings = dict(settings or {})
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="xcol-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._ids = _run_as()
        if self._ids is not None:
            os.chown(self.root, *self._ids)

    @property
    def dsn(self) -> str:
        """TCP URL of the ``postgres`` database as the ``postgres`` superuser."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        user = group = None
        if self._ids is not None:
            user, group = self._ids
        return subprocess.run([str(self.bin_dir / args[0]), *args[1:]], cwd=self.root,
                              capture_output=True, text=True, timeout=120, check=check,
                              user=user, group=group,
                              extra_groups=None if user is None else [])

    def init(self) -> None:
        """``initdb`` (trust authentication, UTF-8, no fsync of the new files)."""
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--locale=C", "-N")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        opts = [f"-p {self.port}", f"-k {self.root}", "-c listen_addresses=127.0.0.1"]
        opts += [f"-c {k}={v}" for k, v in self.settings.items()]
        r = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                      "-o", " ".join(opts), "start", check=False)
        if r.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {r.stdout}{r.stderr}\n{tail}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back sessions and shut down cleanly)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop",
                  check=False)

    def running(self) -> bool:
        """Whether the server is up."""
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def remove(self) -> None:
        """Stop the server if it runs and delete the directory."""
        if self.data.exists() and self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def pg_cluster(bin_dir: Path, settings: dict[str, str] | None = None) -> Iterator[PgCluster]:
    """A started cluster, stopped and removed on exit (also on errors)."""
    c = PgCluster(bin_dir, settings)
    try:
        c.init()
        c.start()
        yield c
    finally:
        c.remove()
