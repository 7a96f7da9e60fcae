"""Start ``gateway serve`` as a real process for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import TEST_ENV, free_port, write_config


class GatewayProcess:
    def __init__(
        self,
        directory: Path,
        *,
        gateway: dict[str, Any] | None = None,
        risk: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ):
        self.port = port or free_port()
        overrides = {"gateway": {"api": {"port": self.port}}}
        merged = dict(gateway or {})
        merged.setdefault("gateway", {})
        merged["gateway"] = {**merged["gateway"], "api": {"host": "127.0.0.1", "port": self.port}}
        del overrides
        self.config_path = write_config(directory, merged, risk)
        self.state_dir = directory / "state"
        self.env = {**os.environ, **TEST_ENV, **(env or {})}
        self.env.pop("NOTIFY_SOCKET", None)
        self.log_path = directory / f"gateway-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = [
            sys.executable,
            "-m",
            "gateway.cli",
            *args[:1],
            "--config",
            str(self.config_path),
            *args[1:],
        ]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=60, env={**self.env, **(env or {})}
        )

    def serve_refused(
        self, *extra: str, timeout_s: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``gateway serve`` expecting it to refuse to start (it must exit on its own)."""
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "serve",
                "--config",
                str(self.config_path),
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=self.env,
        )

    def start(self, timeout_s: float = 30.0, *extra: str) -> GatewayProcess:
        self.start_process(*extra)
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"gateway not ready in {timeout_s}s:\n{self.log()}")

    def start_process(self, *extra: str) -> None:
        """``gateway serve`` started, not waited for."""
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gateway.cli",
                    "serve",
                    "--config",
                    str(self.config_path),
                    *extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout_s: float = 20.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
