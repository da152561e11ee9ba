"""The embedded PostGIS cluster: a private PostgreSQL server in a data directory.

PostgreSQL refuses to run as root, so when wangge runs as root the server runs as an
unprivileged system user (Debian's ``postgres``, or a ``wangge`` user created on demand).
The server listens on 127.0.0.1 and on a Unix socket inside its own data directory.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gis.errors import ClusterError

SUPERUSER = "wangge"
DATABASE = "wangge"


def find_pg_bindir() -> Path:
    """Return the directory holding ``initdb`` and ``pg_ctl`` (newest installed version).

    ``WANGGE_PG_BINDIR`` overrides the search.
    """
    override = os.environ.get("WANGGE_PG_BINDIR")
    candidates = [Path(override)] if override else []
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        versions = sorted(
            (p for p in root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True
        )
        candidates += [v / "bin" for v in versions]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    msg = (
        "no PostgreSQL server binaries found (initdb, pg_ctl); install postgresql-15 and "
        "postgresql-15-postgis-3, or set WANGGE_DATABASE_URL to an existing PostGIS"
    )
    raise ClusterError(msg)


def _service_user() -> str | None:
    """Return the user the server must run as, or None to run as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", SUPERUSER):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SUPERUSER],
        check=True,
    )
    return SUPERUSER


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class EmbeddedCluster:
    """A PostgreSQL cluster living in ``home/pgdata``.

    Parameters
    ----------
    home
        wangge's state directory; the cluster, its log and its port file live below it.
    port
        TCP port on 127.0.0.1; 0 picks a free port at initialisation and remembers it.
    """

    home: Path
    port: int = 0

    def __post_init__(self) -> None:
        self.home = self.home.absolute()
        self.data_dir = self.home / "pgdata"
        self.port_file = self.home / "port"
        self.log_file = self.data_dir / "server.log"
        self.run_as = _service_user()

    # -- commands -------------------------------------------------------------------------

    def _run(self, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        result = subprocess.run(prefix + args, capture_output=True, text=True, check=False, cwd="/")
        if check and result.returncode != 0:
            msg = f"{Path(args[0]).name} failed: {result.stderr.strip() or result.stdout.strip()}"
            raise ClusterError(msg)
        return result

    def _check_traversable(self) -> None:
        # The service user must be able to reach the data directory through every parent.
        if not self.run_as:
            return
        for parent in self.data_dir.parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                msg = (
                    f"{parent} is not traversable by the '{self.run_as}' user that runs "
                    "PostgreSQL; choose another WANGGE_HOME or chmod o+x that directory"
                )
                raise ClusterError(msg)

    @property
    def initialised(self) -> bool:
        """Whether ``initdb`` has run in the data directory."""
        return (self.data_dir / "PG_VERSION").exists()

    def resolved_port(self) -> int:
        """Return the port of the cluster (from the port file once initialised)."""
        if self.port_file.exists():
            return int(self.port_file.read_text().strip())
        return self.port

    def init(self) -> None:
        """Create the data directory with ``initdb`` (no-op when it exists)."""
        if self.initialised:
            return
        bindir = find_pg_bindir()
        self.home.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self._check_traversable()
        if self.run_as:
            user = pwd.getpwnam(self.run_as)
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        self._run(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        )
        port = self.port or _free_port()
        self.port_file.write_text(f"{port}\n")

    def running(self) -> bool:
        """Whether the server of this data directory is up."""
        if not self.initialised:
            return False
        bindir = find_pg_bindir()
        status = self._run(
            [str(bindir / "pg_ctl"), "-D", str(self.data_dir), "status"], check=False
        )
        return status.returncode == 0

    def start(self) -> None:
        """Initialise if needed, start the server and make sure the database has PostGIS."""
        self.init()
        if not self.running():
            bindir = find_pg_bindir()
            port = self.resolved_port()
            options = (
                f"-p {port} -k {self.data_dir} -c listen_addresses=127.0.0.1 "
                "-c fsync=on -c max_connections=100"
            )
            self._run(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    options,
                    "start",
                ]
            )
        self._ensure_database()

    def stop(self) -> None:
        """Stop the server (fast shutdown); no-op when it is not running."""
        if not self.running():
            return
        bindir = find_pg_bindir()
        self._run([str(bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])

    def destroy(self) -> None:
        """Stop the server and delete its data directory."""
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def url(self, database: str = DATABASE) -> str:
        """SQLAlchemy URL of a database in this cluster."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.resolved_port()}/{database}"

    def _ensure_database(self) -> None:
        import psycopg

        base = f"host=127.0.0.1 port={self.resolved_port()} user={SUPERUSER}"
        with psycopg.connect(f"{base} dbname=postgres", autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
        with psycopg.connect(f"{base} dbname={DATABASE}", autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
