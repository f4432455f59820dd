"""Private PostgreSQL and Redis servers, for tests that stop, kill or
reconfigure a server, and private PgBouncers in front of a PostgreSQL.

The shared servers at ``TEST_POSTGRES_URL`` and ``TEST_REDIS_URL`` serve
every other test, other engineers' runs and CI at the same time: a test must
never stop or reconfigure them.  A test that needs an outage, a server that
refuses writes or a killed backend starts its own here instead: a server
process of this test run, on a free port of 127.0.0.1, with its files in a
temporary directory, which it stops by its PID and starts again on the same
port and files.  Nothing is left behind: :meth:`PrivateServer.close` (run by
``with`` and by the fixtures' finalizers, whatever the test did) stops the
process and removes the directory.

Two ways to use them:

* the session fixtures ``private_postgres`` and ``private_redis``, shared
  by the tests that only stop and start them.  Import them into the test
  module (or into conftest.py, for every module)::

      from .services import private_redis_fixture  # noqa: F401 (a fixture)

      def test_outage(private_redis: PrivateRedis) -> None:
          app = make_app(TOKENAUTH_REDIS_URL=private_redis.url)
          with private_redis.stopped():
              ...  # Redis is down here
          ...      # and up again here, empty

* a server of the test's own, for one configured differently (Redis options
  are ``redis-server`` arguments, PostgreSQL ones ``"name=value"``
  settings)::

      @pytest.fixture(scope="module")
      def full_redis() -> Iterator[PrivateRedis]:
          # A Redis that answers every write with OOM (reads work).
          with PrivateRedis.for_test(
              "--maxmemory", "1", "--maxmemory-policy", "noeviction"
          ) as redis:
              yield redis

  (``redis.client().config_set(...)`` on such a server of one's own is
  fine too, e.g. to make it refuse writes halfway through a test.)

A missing binary skips the test with the reason, or fails it under
``REQUIRE_SERVICES=1`` (CI), as the shared servers do (see
:func:`tests.conftest.service_missing`).
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .conftest import POSTGRES_URL, service_missing

if TYPE_CHECKING:
    from typing_extensions import Self

HOST = "127.0.0.1"
#: How long a server may take to come up or go down (a loaded 2-core CI).
TIMEOUT = 30.0


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class PrivateServer:
    """One server process of this test run, stopped and started by its PID.

    Subclasses say how to run it (:meth:`command`), how to tell that it
    serves (:meth:`ready`) and which signal stops it cleanly.
    """

    #: For messages and the temporary directory's name.
    name = "server"
    #: Sent by :meth:`stop`: the server's own clean and quick shutdown.
    stop_signal = signal.SIGTERM

    def __init__(self) -> None:
        #: Picked at the first :meth:`start`, kept for the later ones.
        self.port = 0
        self.dir = Path(tempfile.mkdtemp(prefix=f"tokenauth-{self.name}-"))
        self.log = self.dir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.user: pwd.struct_passwd | None = None
        # A safety net for an interpreter that exits without running the
        # fixtures' finalizers (an internal error, a second Ctrl-C).
        atexit.register(self.close)

    # -- what subclasses define ---------------------------------------------

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    # -- control -----------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The server's PID while it runs."""
        process = self.process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the server (on the same port and files as before) and wait
        until it serves; fail with its log if it does not within
        :data:`TIMEOUT`."""
        if self.running:
            return
        if not self.port:
            # Picked now rather than in __init__: the less time between
            # the pick and the server's bind, the less chance that another
            # process takes the port in between.
            self.port = free_port()
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C of the terminal reaches pytest,
                # whose finalizers then stop the server, not the server.
                start_new_session=True,
                # Straight into the server as that user (no su/runuser
                # parent in between), so that our PID is the server's.
                **self.user_options(),
            )
        deadline = time.monotonic() + TIMEOUT
        while not self.ready():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"{self.name} not ready after {TIMEOUT}s:\n{self.tail()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server by its PID and wait until it has exited (its
        port is closed then); SIGKILL if it does not stop in time."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(self.stop_signal)
        try:
            process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=TIMEOUT)

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """The server down for the block, and started again after it,
        whatever the block raised."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def close(self) -> None:
        """Stop the server and remove its files; safe to call twice."""
        atexit.unregister(self.close)
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    @classmethod
    @contextmanager
    def for_test(cls, *options: str) -> Iterator[Self]:
        """A started server for a fixture: skipped (or failed under
        ``REQUIRE_SERVICES=1``) if the binaries are missing, closed on exit."""
        reason = cls.missing()
        if reason:
            service_missing(reason)
        server = cls(*options)
        try:
            server.start()
            yield server
        finally:
            server.close()

    @classmethod
    def missing(cls) -> str | None:
        """Why this server cannot run here, if it cannot."""
        raise NotImplementedError

    # -- helpers -----------------------------------------------------------------

    def user_options(self) -> dict[str, Any]:
        if self.user is None:
            return {}
        return {
            "user": self.user.pw_uid,
            "group": self.user.pw_gid,
            "extra_groups": [],
        }

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PrivateRedis(PrivateServer):
    """A ``redis-server`` of this test run that keeps nothing on disk (no
    RDB, no AOF): started again after :meth:`stop`, it is empty.

    :param options: more ``redis-server`` arguments, e.g.
        ``"--maxmemory", "1", "--maxmemory-policy", "noeviction"`` for a
        Redis that refuses writes (OOM) and serves reads.
    """

    name = "redis"
    #: Redis's clean shutdown (it saves nothing: no save points here).
    stop_signal = signal.SIGTERM

    def __init__(self, *options: str) -> None:
        super().__init__()
        self.options = list(options)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``, once started."""
        assert self.port, "start the server first"
        return f"redis://{HOST}:{self.port}/0"

    @classmethod
    def missing(cls) -> str | None:
        if shutil.which("redis-server") is None:
            return "private Redis servers need redis-server"
        return None

    def command(self) -> list[str]:
        return [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.dir),
            "--logfile",
            "",  # stdout, into self.log
            *self.options,
        ]

    def client(self, **options: Any) -> Any:
        """A redis-py client of this server (close it when done)."""
        import redis

        options = {"socket_timeout": 2, "socket_connect_timeout": 2, **options}
        return redis.Redis.from_url(self.url, **options)

    def ready(self) -> bool:
        import redis

        client = self.client(socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown (start it again with
        :meth:`start`)."""
        if self.process is not None and self.running:
            self.process.kill()
            self.process.wait(timeout=TIMEOUT)


def postgres_bin() -> Path | None:
    """PostgreSQL's server binaries: ``TEST_POSTGRES_BIN``, else the newest
    of Debian's ``/usr/lib/postgresql/<version>/bin``, else ``initdb`` on
    the PATH."""
    if "TEST_POSTGRES_BIN" in os.environ:
        return Path(os.environ["TEST_POSTGRES_BIN"])
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: (
            int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0
        ),
    )
    if versions:
        return versions[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivatePostgres(PrivateServer):
    """A PostgreSQL server of this test run: a cluster made by ``initdb``
    in a temporary directory (user ``postgres``, trust authentication,
    no fsync), its ``postgres`` process run directly so that we hold its
    PID.  :meth:`stop` is a fast shutdown (SIGINT): open connections are
    cut, as in ``pg_ctl stop -m fast``.

    PostgreSQL refuses to run as root: under root the cluster belongs to
    the ``postgres`` user, and both ``initdb`` and the server run as it.

    :param settings: more server settings, ``"name=value"`` each (passed as
        ``-c name=value``).
    """

    name = "postgres"
    stop_signal = signal.SIGINT

    def __init__(self, *settings: str) -> None:
        super().__init__()
        self.settings = list(settings)
        self.bin = postgres_bin() or Path("/nonexistent")
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            self.user = pwd.getpwnam("postgres")
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self.initdb()

    @property
    def url(self) -> str:
        """The ``postgres`` database (create your own in it if you share the
        server, see :func:`tests.conftest.throwaway_database`), once
        started."""
        assert self.port, "start the server first"
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    @classmethod
    def missing(cls) -> str | None:
        bin_dir = postgres_bin()
        tools = ["initdb", "postgres", "pg_isready"]
        if bin_dir is None or not all((bin_dir / tool).exists() for tool in tools):
            return (
                f"private PostgreSQL servers need {', '.join(tools)}"
                " (/usr/lib/postgresql/<version>/bin or TEST_POSTGRES_BIN)"
            )
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return "private PostgreSQL servers run as root need a postgres user"
        return None

    def initdb(self) -> None:
        result = subprocess.run(
            [
                str(self.bin / "initdb"),
                "--pgdata",
                str(self.data),
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-locale",
                # A throwaway cluster: no need to wait for the disk.
                "--no-sync",
            ],
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=TIMEOUT * 2,
            env={**os.environ, "LC_ALL": "C"},
            **self.user_options(),
        )
        if result.returncode != 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            atexit.unregister(self.close)
            raise RuntimeError(
                f"initdb failed ({result.returncode}):\n"
                + (result.stdout + result.stderr).decode(errors="replace")[-3000:]
            )

    def command(self) -> list[str]:
        settings = [
            f"listen_addresses={HOST}",
            # Its socket in its own directory, not /var/run/postgresql.
            f"unix_socket_directories={self.dir}",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
            "shared_buffers=32MB",
            *self.settings,
        ]
        options = [arg for setting in settings for arg in ("-c", setting)]
        return [
            str(self.bin / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            *options,
        ]

    def ready(self) -> bool:
        command = [str(self.bin / "pg_isready"), "-q", "-h", HOST, "-p", str(self.port)]
        return (
            subprocess.run(
                [*command, "-t", "1"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
            ).returncode
            == 0
        )


def pgbouncer_path() -> str | None:
    """``pgbouncer``: on the PATH, else Debian's ``/usr/sbin/pgbouncer``
    (``/usr/sbin`` is not on every user's PATH)."""
    found = shutil.which("pgbouncer")
    if found is None and os.access("/usr/sbin/pgbouncer", os.X_OK):
        found = "/usr/sbin/pgbouncer"
    return found


class PrivatePgBouncer(PrivateServer):
    """A ``pgbouncer`` of this test run in front of a PostgreSQL server, by
    default the shared one at ``TEST_POSTGRES_URL`` (or a
    :class:`PrivatePostgres`, passing its :attr:`~PrivatePostgres.url`).

    Every database of that server is reachable through it under its own
    name (a ``*`` entry), as the server's user (``postgres``, trust), in
    ``pool_mode=transaction`` unless a setting says otherwise: each
    transaction of a client may run on another server connection, so
    nothing a client sets on its session (``SET``, ``LISTEN``, prepared
    statements, session advisory locks) outlives its transaction.  Its
    admin console (the ``pgbouncer`` database, :meth:`show`) says what it
    does.  The config and auth files are in the temporary directory; the
    system's pgbouncer service, if any, is never used.

    PgBouncer refuses to run as root: under root it runs as the
    ``postgres`` user, as :class:`PrivatePostgres` does.

    :param target: the PostgreSQL URL whose host, port and user it
        connects to.
    :param settings: more ``[pgbouncer]`` settings, ``"name=value"`` each,
        e.g. ``"pool_mode=session"``.
    """

    name = "pgbouncer"
    #: Immediate shutdown up to 1.22 (SIGINT waits for queries, and from
    #: 1.23 SIGTERM waits for every client to leave: SIGQUIT is the
    #: immediate one there, see :meth:`__init__`).
    stop_signal = signal.SIGTERM

    def __init__(self, *settings: str, target: str = POSTGRES_URL) -> None:
        super().__init__()
        from sqlalchemy import make_url

        self.target = make_url(target)
        self.settings = list(settings)
        self.binary = pgbouncer_path() or "pgbouncer"
        if self.version() >= (1, 23):
            self.stop_signal = signal.SIGQUIT
        if os.geteuid() == 0:
            self.user = pwd.getpwnam("postgres")
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self.config = self.dir / "pgbouncer.ini"
        self.auth_file = self.dir / "userlist.txt"

    def version(self) -> tuple[int, ...]:
        """``pgbouncer --version``'s first line, ``PgBouncer 1.18.0``."""
        output = subprocess.run(
            [self.binary, "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        ).stdout
        words = output.split()
        if len(words) < 2:
            return (0,)
        return tuple(int(part) for part in words[1].split(".") if part.isdigit())

    @classmethod
    def missing(cls) -> str | None:
        if pgbouncer_path() is None:
            return "PgBouncer tests need pgbouncer (make pgbouncer installs it)"
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return "a private PgBouncer run as root needs a postgres user"
        return None

    @property
    def url(self) -> str:
        """The target server's ``postgres`` database through this PgBouncer
        (see :meth:`through` for another), once started."""
        return self.through(self.target.set(database="postgres"))

    def through(self, url: Any) -> str:
        """``url`` (a database of the target server) through this PgBouncer:
        the same user and database at this host and port."""
        from sqlalchemy import make_url

        assert self.port, "start the server first"
        parsed = make_url(url).set(host=HOST, port=self.port, password=None)
        return parsed.render_as_string(hide_password=False)

    def write_config(self) -> None:
        user = self.target.username or "postgres"
        target = f"host={self.target.host or HOST} port={self.target.port or 5432}"
        if self.target.password:
            # PgBouncer's own login to the server; its clients need none.
            target += f" password={self.target.password}"
        settings = [
            f"listen_addr = {HOST}",
            f"listen_port = {self.port}",
            # Its socket in its own directory, not /tmp.
            f"unix_socket_dir = {self.dir}",
            "auth_type = trust",
            f"auth_file = {self.auth_file}",
            f"admin_users = {user}",
            "pool_mode = transaction",
            "max_client_conn = 200",
            "default_pool_size = 10",
            # Logs on stderr, into self.log.
            "syslog = 0",
            # Sent by JDBC and asyncpg (psycopg2 sends none): the setting
            # most deployments have.  ``options`` stays refused, as it is
            # by default: a URL that sets server options at connect time
            # fails here as it would in production.
            "ignore_startup_parameters = extra_float_digits",
            *(" = ".join(s.split("=", 1)) for s in self.settings),
        ]
        self.config.write_text(
            "[databases]\n"
            f"* = {target} user={user}\n"
            "\n[pgbouncer]\n" + "\n".join(settings) + "\n"
        )
        # trust still needs the user to be listed.
        self.auth_file.write_text(f'"{user}" ""\n')

    def command(self) -> list[str]:
        self.write_config()
        return [self.binary, str(self.config)]

    def ready(self) -> bool:
        try:
            self.show("VERSION")
        except Exception:
            return False
        return True

    def show(self, what: str) -> list[dict[str, Any]]:
        """``SHOW <what>`` on the admin console (``POOLS``, ``CONFIG``,
        ``SERVERS``, ...), as one dict per row."""
        import psycopg2

        conn = psycopg2.connect(
            host=HOST,
            port=self.port,
            user=self.target.username or "postgres",
            dbname="pgbouncer",
            connect_timeout=2,
        )
        try:
            # The console knows no transactions: no BEGIN before SHOW.
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f"SHOW {what}")
                names = [column.name for column in cursor.description or ()]
                return [dict(zip(names, row, strict=True)) for row in cursor]
        finally:
            conn.close()

    def setting(self, key: str) -> str:
        """One setting's value as the running PgBouncer has it."""
        for row in self.show("CONFIG"):
            if row["key"] == key:
                return str(row["value"])
        raise KeyError(key)


@pytest.fixture(scope="session", name="private_postgres")
def private_postgres_fixture() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of this run, for tests that stop and start it.
    Such a test must leave it running (use :meth:`PrivateServer.stopped`)."""
    with PrivatePostgres.for_test() as server:
        yield server


@pytest.fixture(scope="session", name="private_redis")
def private_redis_fixture() -> Iterator[PrivateRedis]:
    """A Redis server of this run, for tests that stop and start it.  Such a
    test must leave it running (use :meth:`PrivateServer.stopped`) and
    unconfigured: a test that changes its configuration starts its own
    with :meth:`PrivateServer.for_test`."""
    with PrivateRedis.for_test() as server:
        yield server


@pytest.fixture(scope="session", name="private_pgbouncer")
def private_pgbouncer_fixture() -> Iterator[PrivatePgBouncer]:
    """A PgBouncer of this run in transaction mode, in front of the shared
    PostgreSQL at ``TEST_POSTGRES_URL``: reach a database of that server
    through it with :meth:`PrivatePgBouncer.through`.  A test that
    reconfigures or stops it starts its own instead."""
    with PrivatePgBouncer.for_test() as server:
        yield server
