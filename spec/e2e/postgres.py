"""Run a private PostgreSQL for end-to-end tests and the bench.

PostgresServer owns one temporary directory: the cluster (initdb), its log and its unix socket.
It listens on 127.0.0.1 only, on a port chosen at run time, and is stopped by the pid this
module started (the postmaster itself, never found by name). The system cluster
(/var/lib/postgresql, pg_ctlcluster) is never used or touched.

initdb and postgres refuse to run as root: as root the cluster belongs to the `postgres` user
(the Debian package creates it) and the server runs as that user, started directly with
setuid, so the pid we hold is the postmaster's. Authentication is `trust` for the one
superuser role (ROLE), on loopback and the private socket only.

The harness side (prosody_config.py) reads the connection from $E2E_POSTGRES, a libpq-style string
("host=127.0.0.1 port=N user=invites"), which env() gives; create_database() makes one database
per Prosody server so tests never share data.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from process import stop_process

ROLE = "invites"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
ENV = "E2E_POSTGRES"


class PostgresError(RuntimeError):
    pass


def bin_dir() -> Path:
    """Debian's versioned server binaries (/usr/lib/postgresql/N/bin), newest first; $PG_BIN_DIR
    overrides. Not /usr/bin's wrappers: those pick clusters of the system."""
    if os.environ.get("PG_BIN_DIR"):
        return Path(os.environ["PG_BIN_DIR"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: [int(x) for x in Path(p).parent.parent.name.split(".") if x.isdigit()])
    if not found:
        raise PostgresError("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    return Path(found[-1]).parent


def available() -> bool:
    try:
        bin_dir()
    except PostgresError:
        return False
    return True


def parse_conninfo(text: str) -> dict:
    """"host=127.0.0.1 port=5 user=u" -> {"host": "127.0.0.1", "port": "5", "user": "u"}."""
    out = {}
    for part in text.split():
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"{ENV}: expected key=value, got {part!r}")
        out[key] = value
    return out


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_db_counter = itertools.count(1)


def unique_database_name(prefix: str = "e2e") -> str:
    """A database name no other process or server of this run uses (pid + counter)."""
    return f"{prefix}_{os.getpid()}_{next(_db_counter)}"


def psql(conninfo: dict, sql: str, database: str = "postgres", timeout: float = 30) -> str:
    """Runs one SQL command with the cluster's psql; returns its unaligned output."""
    cmd = [str(bin_dir() / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
           "-h", conninfo["host"], "-p", str(conninfo["port"]), "-U", conninfo["user"], "-d", database, "-c", sql]
    env = dict(os.environ, PGCONNECT_TIMEOUT="10")
    env.pop("PGPASSWORD", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise PostgresError(f"psql {sql!r} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def create_database(conninfo: dict | str, name: str | None = None) -> str:
    """CREATE DATABASE on the server conninfo names; returns the database name."""
    if isinstance(conninfo, str):
        conninfo = parse_conninfo(conninfo)
    name = name or unique_database_name()
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe database name {name!r}")
    psql(conninfo, f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0')
    return name


def prosody_sql_options(conninfo: dict | str, database: str) -> dict:
    """Prosody's `sql` option for that database (mod_storage_sql through lua-dbi-postgresql)."""
    if isinstance(conninfo, str):
        conninfo = parse_conninfo(conninfo)
    return {"driver": "PostgreSQL", "database": database, "username": conninfo["user"],
            "host": conninfo["host"], "port": int(conninfo["port"])}


class PostgresServer:
    """One private PostgreSQL cluster: start(), conninfo / env(), stop()."""

    def __init__(self, workdir: Path | str | None = None):
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="invites-pg-")).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._own_dir = workdir is None
        self.data_dir = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.user = None  # run as this system user (root cannot run postgres)
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresError("running as root needs the `postgres` system user (apt-get install postgresql)")
            self.user = "postgres"

    # ----------------------------------------------------------------- set-up

    def _run_kwargs(self) -> dict:
        return {"user": self.user, "group": self.user} if self.user else {}

    def _initdb(self) -> None:
        os.chmod(self.dir, 0o755)
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        proc = subprocess.run(
            [str(bin_dir() / "initdb"), "-D", str(self.data_dir), "-U", ROLE, "-A", "trust", "-E", "UTF8",
             "--locale=C", "--no-sync"],
            capture_output=True, text=True, cwd=self.dir, **self._run_kwargs())
        if proc.returncode != 0:
            raise PostgresError(f"initdb failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")

    def start(self) -> "PostgresServer":
        if self.proc is not None:
            raise PostgresError("already started")
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        for _ in range(3):
            self.port = _free_port()
            if self._start_once():
                _live.append(self)
                return self
        raise PostgresError("could not bind a free loopback port after 3 attempts\n" + self.log_tail())

    def _start_once(self) -> bool:
        self._log = open(self.log_path, "ab")
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.log_path, pw.pw_uid, pw.pw_gid)
        offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [str(bin_dir() / "postgres"), "-D", str(self.data_dir), "-h", "127.0.0.1", "-p", str(self.port),
             "-k", str(self.dir),
             # Throw-away data: no durability, small footprint.
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200", "-c", "shared_buffers=32MB", "-c", "listen_addresses=127.0.0.1"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.dir,
            start_new_session=True, **self._run_kwargs())
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                text = self.log_path.read_bytes()[offset:].decode(errors="replace")
                self._close()
                if "could not bind" in text or "already in use" in text:
                    return False  # someone took the port meanwhile
                raise PostgresError(f"postgres exited with status {rc} during start-up:\n{text[-3000:]}")
            ready = subprocess.run([str(bin_dir() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", ROLE, "-d", "postgres"],
                                   capture_output=True)
            if ready.returncode == 0:
                return True
            time.sleep(0.05)
        self.stop()
        raise PostgresError(f"postgres not ready after {START_TIMEOUT}s\n" + self.log_tail())

    # ------------------------------------------------------------------ use

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def conninfo(self) -> dict:
        return {"host": "127.0.0.1", "port": str(self.port), "user": ROLE}

    def conninfo_string(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.conninfo.items())

    def env(self) -> dict:
        """Environment telling the e2e harness (prosody_config.py) where this server is."""
        return {ENV: self.conninfo_string()}

    def create_database(self, name: str | None = None) -> str:
        return create_database(self.conninfo, name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        return psql(self.conninfo, sql, database)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    # ----------------------------------------------------------------- stop

    def _close(self) -> None:
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> int | None:
        """Fast shutdown (SIGINT) of the postmaster we started, SIGKILL after a timeout."""
        # Fast shutdown (SIGINT), SIGKILL after a timeout.
        rc = stop_process(self.proc, signal.SIGINT, STOP_TIMEOUT)
        self._close()
        return rc

    def cleanup(self) -> None:
        """stop(), then remove the directory if this object made it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    def __repr__(self):
        state = f"pid {self.proc.pid}" if self.running else "stopped"
        return f"<PostgresServer {self.dir} port={self.port} {state}>"


_live: list[PostgresServer] = []


@atexit.register
def _stop_leftovers() -> None:
    """Safety net: never leave a postgres we started running after Python exits."""
    for srv in _live:
        try:
            srv.stop()
        except Exception:
            pass
