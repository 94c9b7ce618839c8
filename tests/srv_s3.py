"""A real local S3 endpoint for tests: ``moto[server]`` in its own process on 127.0.0.1.

:class:`MotoS3` starts ``python -m moto.server`` on a port (a free one by default), waits
until it answers HTTP and stops it (SIGTERM, then SIGKILL) on :meth:`stop`.  Tests pass the
endpoint to boto3 with throwaway credentials (:func:`aws_env`); moto accepts any.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

__all__ = ["MotoS3", "aws_env", "free_port", "have_moto"]


def have_moto() -> bool:
    """Whether ``moto[server]`` is importable (the test is skipped otherwise)."""
    return (importlib.util.find_spec("moto") is not None
            and importlib.util.find_spec("flask") is not None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def aws_env(tmp: str) -> dict[str, str]:
    """Environment for boto3 that ignores the user's AWS files and uses dummy keys."""
    return {
        "AWS_ACCESS_KEY_ID": "xcol-test", "AWS_SECRET_ACCESS_KEY": "xcol-test",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.path.join(tmp, "none"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(tmp, "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


class MotoS3:
    """One moto S3 server process.

    :param port: port to listen on (0: a free one).
    """

    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1):
                    return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"moto server did not answer on {self.endpoint} in {timeout} s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def client(self) -> Any:
        """A boto3 S3 client for this server (credentials from the environment)."""
        import boto3

        return boto3.session.Session().client("s3", endpoint_url=self.endpoint,
                                              region_name="us-east-1")

    def __enter__(self) -> MotoS3:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()
