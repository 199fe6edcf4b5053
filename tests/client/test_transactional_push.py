"""Transactional enqueue on PostgreSQL: a job pushed inside an application's transaction
exists for Werk if and only if that transaction commits.

A real ``werk server`` runs on a fresh schema of the session's PostgreSQL database
(``tests/pg.py``); the application side is a real psycopg 3, SQLAlchemy, Django or
``psql`` connection to the same database, with its own table beside Werk's schema.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests import pg
from tests.helpers import Peer, ServerProcess
from werk.client import Job
from werk.client import postgres as werk_pg
from werk.errors import CommandError
from werk.protocol.resp import Error, Simple

OK = Simple("OK")


class App:
    """One Werk server on a schema, and the application's view of the same database."""

    def __init__(self, url: str, server: ServerProcess) -> None:
        self.schema = url.rsplit("schema=", 1)[1]
        self.server = server
        self.orders = f"{self.schema}_orders"  # the application's own table
        with psycopg.connect(pg.pg_url(), autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {self.orders} (id int PRIMARY KEY)")

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(pg.pg_url())

    def worker(self) -> Peer:
        peer = Peer(self.server.host, self.server.port)
        assert peer.hello(wid=f"w-{self.schema}") == OK
        return peer

    def scalar(self, query: str) -> Any:
        with psycopg.connect(pg.pg_url()) as conn:
            row = conn.execute(query.replace("{s}", self.schema)).fetchone()
            assert row is not None
            return row[0]

    def drop(self) -> None:
        with psycopg.connect(pg.pg_url(), autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {self.orders}")


@pytest.fixture
def app(tmp_path: Path, shared_postgres: str) -> Iterator[App]:
    server = ServerProcess(tmp_path / "data", extra_args=["--storage", shared_postgres]).start()
    application = App(shared_postgres, server)
    yield application
    server.kill()
    application.drop()


def fetch(peer: Peer) -> dict[str, Any] | None:
    """FETCH (the server blocks up to 2 s for a job) and decode the job, if any."""
    reply = peer.call("FETCH default")
    return None if reply is None else json.loads(reply)  # type: ignore[arg-type]


def test_commit_makes_the_job_run_once(app: App) -> None:
    # Given an order and its job written in one transaction
    worker = app.worker()
    with app.connect() as conn, conn.transaction():
        conn.execute(f"INSERT INTO {app.orders} VALUES (1)")
        jid = werk_pg.push(conn, Job("SendReceipt", [1]), schema=app.schema)
    # When a worker fetches after the commit
    job = fetch(worker)
    # Then it gets that job, as a PUSHed job looks, and after its ACK nothing is left
    assert job is not None and job["jid"] == jid and job["args"] == [1]
    assert job["queue"] == "default" and "enqueued_at" in job and "created_at" in job
    assert worker.call(f'ACK {{"jid": "{jid}"}}') == OK
    assert fetch(worker) is None
    assert app.scalar("SELECT count(*) FROM {s}.intake") == 0
    info = json.loads(worker.call("INFO"))  # type: ignore[arg-type]
    assert info["faktory"]["total_processed"] == 1


def test_rollback_leaves_no_trace(app: App) -> None:
    worker = app.worker()
    with app.connect() as conn:
        with pytest.raises(RuntimeError), conn.transaction():
            conn.execute(f"INSERT INTO {app.orders} VALUES (2)")
            werk_pg.push(conn, Job("SendReceipt", [2]), schema=app.schema)
            raise RuntimeError("the order failed")
    assert app.scalar(f"SELECT count(*) FROM {app.orders}") == 0
    assert fetch(worker) is None
    assert app.scalar("SELECT count(*) FROM {s}.intake") == 0
    assert app.scalar("SELECT count(*) FROM {s}.jobs") == 0


def test_a_job_of_an_open_transaction_is_not_fetchable(app: App) -> None:
    worker = app.worker()
    conn = app.connect()
    try:
        jid = werk_pg.push(conn, {"jobtype": "Later", "args": []}, schema=app.schema)
        assert fetch(worker) is None  # the transaction is still open
        conn.commit()
        job = fetch(worker)
        assert job is not None and job["jid"] == jid
    finally:
        conn.close()


REFUSED: list[str] = [
    '{"Jid": "short", "jobtype": "T", "args": []}',
    '{"jid": "abcdefgh\\u0000", "jobtype": "T", "args": []}',
    '{"jid": "abcdefgh1", "JobType": 5, "args": []}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "Priority": 0}',
    "[1, 2]",
    '{"jid": 12345678, "jobtype": "T", "args": []}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": {}}',
    '{"jid": "short", "jobtype": "T", "args": []}',
    '{"jid": "abcdefgh1", "args": []}',
    '{"jid": "abcdefgh1", "jobtype": "", "args": []}',
    '{"jid": "abcdefgh1", "jobtype": "T"}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "queue": 5}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "retry": "many"}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "retry": true}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "retry": 1.5}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "retry": 1e3}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "retry": 9223372036854775808}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "reserve_for": 86401}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "priority": 0}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "priority": 10}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "created_at": 5}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "backtrace": "all"}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "failure": []}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "failure": {"retry_count": "1"}}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "failure": {"Backtrace": ["ok", 2]}}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "custom": "x"}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "at": 12}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "at": "soon"}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "at": "2001-02-03 04:05:06Z"}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "at": "9999-12-31T23:59:59-14:00"}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "at": "9999-12-31T23:59:59.9999Z"}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "at": "0001-01-01T00:00:00+00:01"}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "queue": "a b"}',
    '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "queue": "ü"}',
]


def test_the_sql_function_refuses_a_job_with_the_message_push_gives(app: App) -> None:
    peer = app.worker()
    with app.connect() as conn:
        conn.autocommit = True
        for job in REFUSED:
            # PUSH's answer over the wire...
            reply = peer.call("PUSH " + job)
            assert isinstance(reply, Error), job
            # ...is the SQL function's error, raised at the call (SQLSTATE 22023)
            with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
                conn.execute(f"SELECT {app.schema}.push(%s::json)", (job,))
            assert f"ERR {refused.value.diag.message_primary}" == reply.text, job
    assert app.scalar("SELECT count(*) FROM {s}.intake") == 0


def test_the_python_client_raises_push_s_error(app: App) -> None:
    with app.connect() as conn:
        with pytest.raises(CommandError, match="priority between 1 and 9"):
            werk_pg.push(conn, Job("T", [], priority=12), schema=app.schema)
        conn.rollback()


def test_plain_sql_from_any_language(app: App) -> None:
    # A Go, Ruby or Node application does the same with plain SQL; psql stands in for it.
    worker = app.worker()
    job = json.dumps({"jid": "from-psql-0001", "jobtype": "Report", "args": ["q3"]})
    script = (
        f"BEGIN; INSERT INTO {app.orders} VALUES (7); SELECT {app.schema}.push('{job}'); COMMIT;"
    )
    subprocess.run(["psql", pg.pg_url(), "-v", "ON_ERROR_STOP=1", "-qc", script], check=True)
    found = fetch(worker)
    assert found is not None and found["jid"] == "from-psql-0001" and found["args"] == ["q3"]


def test_sqlalchemy_connection_and_session(app: App) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    worker = app.worker()
    engine = create_engine(pg.pg_url().replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.begin() as conn:
            conn.execute(text(f"INSERT INTO {app.orders} VALUES (3)"))
            first = werk_pg.push(conn, Job("T", [3]), schema=app.schema)
        with Session(engine) as session, session.begin():
            session.execute(text(f"INSERT INTO {app.orders} VALUES (4)"))
            second = werk_pg.push(session, Job("T", [4]), schema=app.schema)
    finally:
        engine.dispose()
    got = {job["jid"] for job in (fetch(worker), fetch(worker)) if job is not None}
    assert got == {first, second}


def test_django_connection(app: App) -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        name = pg.pg_url().rsplit("/", 1)[1]
        database = {"ENGINE": "django.db.backends.postgresql", "NAME": name}
        database |= {"USER": "postgres", "HOST": "127.0.0.1", "PORT": "5432"}
        settings.configure(DATABASES={"default": database})
        django.setup()
    from django.db import connection, transaction

    worker = app.worker()
    try:
        with transaction.atomic():
            with connection.cursor() as cur:
                cur.execute(f"INSERT INTO {app.orders} VALUES (5)")
            jid = werk_pg.push(connection, Job("T", [5]), schema=app.schema)
    finally:
        connection.close()
    found = fetch(worker)
    assert found is not None and found["jid"] == jid


async def test_psycopg_async_connection(app: App) -> None:
    worker = app.worker()
    async with await psycopg.AsyncConnection.connect(pg.pg_url()) as conn:
        async with conn.transaction():
            jid = await werk_pg.push_async(conn, Job("T", [6]), schema=app.schema)
    found = fetch(worker)
    assert found is not None and found["jid"] == jid


def test_a_job_python_refuses_stays_in_intake_with_its_error(app: App) -> None:
    # The SQL function does not count JSON nesting; PUSH's decoder refuses past 100 levels:
    # the server keeps such a row, with PUSH's message, for an operator to see.
    worker = app.worker()
    deep = json.loads("[" * 150 + "]" * 150)
    with app.connect() as conn, conn.transaction():
        werk_pg.push(conn, {"jobtype": "T", "args": deep}, schema=app.schema)
        werk_pg.push(conn, Job("After", []), schema=app.schema)
    found = fetch(worker)
    assert found is not None and found["jobtype"] == "After"
    error = app.scalar("SELECT error FROM {s}.intake")
    assert "nested deeper than 100 levels" in error


def test_a_jid_of_three_wide_characters_is_taken_as_push_takes_it(app: App) -> None:
    worker = app.worker()
    assert worker.call('PUSH {"jid": "日本語", "jobtype": "T", "args": []}') == OK
    with app.connect() as conn, conn.transaction():
        werk_pg.push(conn, {"jid": "日本語x", "jobtype": "T", "args": []}, schema=app.schema)
    jids = {job["jid"] for job in (fetch(worker), fetch(worker)) if job is not None}
    assert jids == {"日本語", "日本語x"}


def test_an_offset_postgresql_cannot_read_is_push_s_error_class(app: App) -> None:
    # PostgreSQL reads offsets up to 15:59 only: -23:59 raised its own error (SQLSTATE
    # 22009), not PUSH's 22023 with an "invalid timestamp for 'at'" message.
    job = '{"jid": "abcdefgh1", "jobtype": "T", "args": [], "at": "2030-01-01T00:00:00-23:59"}'
    with app.connect() as conn:
        conn.autocommit = True
        with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
            conn.execute(f"SELECT {app.schema}.push(%s::json)", (job,))
        assert refused.value.diag.message_primary.startswith("invalid timestamp for 'at'")
