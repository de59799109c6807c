"""An embedded MongoDB-compatible server for the demo, development and tests.

Runs SecantusDB (the optional ``embedded`` extra: ``pip install
'mongo_runevents[embedded]'``) as a child process on 127.0.0.1, keeping its data
in a folder. SecantusDB reports itself as a one-member replica set, so the store
uses transactions on it; ``standalone=True`` makes it a plain standalone server.
SecantusDB is GPL-2.0 and a pre-release: it is never a required dependency.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from .errors import ConfigurationError, StoreUnavailableError

_DAEMON = "secantusd-py"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _daemon_path() -> str:
    """The ``secantusd-py`` beside this interpreter, else the one on ``PATH``."""
    beside = Path(sys.executable).with_name(_DAEMON)
    if beside.exists():
        return str(beside)
    found = shutil.which(_DAEMON)
    if found is None:
        raise ConfigurationError(
            "the embedded server needs SecantusDB: pip install 'mongo_runevents[embedded]' "
            "(or pass --uri / set MONGODB_URI to use your own MongoDB)"
        )
    return found


def available() -> bool:
    """Whether SecantusDB is installed, so that an embedded server can start."""
    try:
        _daemon_path()
    except ConfigurationError:
        return False
    return True


class EmbeddedServer:
    """A SecantusDB daemon on 127.0.0.1 with its data in ``data_dir``.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    ``test_commands`` enables ``configureFailPoint`` for fault injection.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        standalone: bool = False,
        test_commands: bool = False,
        extra_args: tuple[str, ...] = (),
        log_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.standalone = standalone
        self.test_commands = test_commands
        self.extra_args = extra_args
        self.log_file = (
            Path(log_file) if log_file else self.data_dir.with_name(self.data_dir.name + ".log")
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        """The connection string of the server (a direct connection)."""
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    @property
    def running(self) -> bool:
        """Whether the daemon process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 60.0) -> EmbeddedServer:
        """Start the daemon and wait until it accepts connections."""
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [_daemon_path(), "--storage-path", str(self.data_dir)]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "WARNING"]
        if self.standalone:
            command.append("--standalone")
        if self.test_commands:
            command.append("--enable-test-commands")
        command += list(self.extra_args)
        with open(self.log_file, "ab") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self._wait_until_listening(timeout)
        return self

    def _wait_until_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise StoreUnavailableError(
                    f"the embedded server exited with code {self._process.returncode}; "
                    f"see {self.log_file}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise StoreUnavailableError(
            f"the embedded server did not listen on port {self.port} within {timeout:.0f} s",
            timeout=True,
        )

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the daemon gracefully (SIGTERM), killing it if it does not exit in time."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Kill the daemon at once (SIGKILL), as a crash would."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
