"""The task API against a real server: declared defaults, positional args, scheduling, bulk,
and a worker that runs declared tasks."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.client.conftest import async_wait_until
from tests.client.test_worker import Start
from tests.helpers import ServerProcess
from werk.cli.main import build_parser
from werk.cli.worker import build_worker
from werk.client import Client, Job, Pushed, Worker, task
from werk.client.tasks import positional_args


@task(queue="images", retry=3, priority=7, reserve_for=120, timeout=9.5)
def resize(image_id: int, width: int = 100, height: int = 0) -> int:
    return image_id * width + height


@task("Report")
async def report(name: str, *pages: int) -> None:
    await asyncio.sleep(0)


def fetch_one(client: Client, queue: str) -> dict[str, Any]:
    job = client.fetch(queue)
    assert job is not None
    return job


def test_push_sends_the_declared_defaults_and_positional_args(client: Client) -> None:
    pushed = resize.using(client).push(7, height=5)
    assert isinstance(pushed, Pushed) and (pushed.jobtype, pushed.queue) == ("resize", "images")
    job = fetch_one(client, "images")
    assert job["jid"] == pushed.jid and job["jobtype"] == "resize"
    assert job["args"] == [7, 100, 5]  # keyword bound to its position, the skipped default sent
    assert (job["retry"], job["priority"], job["reserve_for"]) == (3, 7, 120)
    assert job["custom"] == {"timeout": 9.5}
    assert resize(2, 3) == 6  # calling the task still calls the function


@task(queue="feeds", unique_for=600, expires_in=300, track=True)
def refresh_feed(feed_id: int) -> None: ...


def test_enterprise_options_are_task_options(client: Client) -> None:
    """unique_for, expires_in and track are declared like retry, not through custom."""
    from werk.errors import NotUniqueError

    # Given a task declared unique for 10 minutes, expiring after 5, and tracked
    pushed = refresh_feed.using(client).push(42)
    # Then the server applied all three: an equal push is refused, the job carries its
    # expiry time, and its state is tracked
    with pytest.raises(NotUniqueError):
        refresh_feed.using(client).push(42)
    refresh_feed.using(client).push(43)  # other args: another job
    assert client.track_get(pushed.jid)["state"] == "enqueued"
    job = fetch_one(client, "feeds")
    assert job["jid"] == pushed.jid
    assert job["custom"]["unique_for"] == 600 and job["custom"]["track"] == 1
    expires = datetime.fromisoformat(job["custom"]["expires_at"].replace("Z", "+00:00"))
    assert timedelta(seconds=290) < expires - datetime.now(UTC) <= timedelta(seconds=300)
    assert Job("x", unique_for=5, unique_until="start").to_dict()["custom"] == {
        "unique_for": 5,
        "unique_until": "start",
    }
    assert "custom" not in Job("x").to_dict()  # nothing declared, nothing sent


def test_positional_args_convention() -> None:
    signature = resize.signature
    assert positional_args(signature, (1,), {}) == [1]
    assert positional_args(signature, (), {"image_id": 1, "width": 2}) == [1, 2]
    assert positional_args(report.signature, ("q3", 1, 2), {}) == ["q3", 1, 2]
    with pytest.raises(TypeError):
        positional_args(signature, (), {"width": 2})


def test_an_unexpected_keyword_is_named_before_a_missing_argument() -> None:
    # resize(image_id, width=100, height=0): bind() alone would say "missing a required
    # argument: 'image_id'" for resize.push(width=1, depth=2)
    with pytest.raises(TypeError) as refused:
        resize.job(width=1, depth=2)  # type: ignore[call-arg]
    assert str(refused.value) == (
        "got an unexpected keyword argument 'depth' (the parameters are: image_id, width, height)"
    )
    with pytest.raises(TypeError, match="missing a required argument: 'image_id'"):
        resize.job(width=1)  # type: ignore[call-arg]


def test_with_options_merges_custom_into_the_declared_custom(client: Client) -> None:
    @task(queue="merge", custom={"unique_for": 600, "track": 1, "tag": "a"}, timeout=5)
    def imports(row: str) -> None: ...

    in_batch = imports.with_options(custom={"bid": "b-1", "tag": "b"}, priority=8)
    assert in_batch.job("x").to_dict()["custom"] == {
        "unique_for": 600,
        "track": 1,
        "tag": "b",
        "bid": "b-1",
        "timeout": 5,
    }
    assert imports.options.custom == {"unique_for": 600, "track": 1, "tag": "a"}  # unchanged
    assert imports.with_options(custom=None).job("x").to_dict()["custom"] == {"timeout": 5}
    bid = client.batch_new({"complete": Job("imports_done", [])})
    imports.with_options(custom={"bid": bid}).using(client).push("y")
    job = fetch_one(client, "merge")
    assert job["custom"]["unique_for"] == 600 and job["custom"]["track"] == 1
    assert job["custom"]["bid"] == bid and client.batch_status(bid)["total"] == 1


def test_a_jobtype_collision_names_what_gives_another_jobtype() -> None:
    def declare() -> Any:  # each call: another function named send, as in two modules
        def send(address: str) -> None: ...

        return send

    worker = Worker()
    worker.include(task(declare()))
    with pytest.raises(ValueError, match="already registered") as refused:
        worker.include(task(declare()))
    # The message names ways that exist (it once suggested @task(name=...), which does not).
    assert "@task('Name')" in str(refused.value)
    worker.include(task("SendAgain")(declare()))
    assert set(worker.registry) == {"send", "SendAgain"}


def test_an_empty_queue_and_a_nan_argument_are_refused_before_sending(client: Client) -> None:
    # queue="" used to land in "default" without a word, and NaN to come back from the
    # server as "invalid JSON" for the whole push
    @task(queue="api")
    def f(x: float) -> None: ...

    with pytest.raises(ValueError, match=r"queue name '': queue names must match .*unset"):
        f.using(client).with_options(queue="").push(1)
    with pytest.raises(ValueError, match="queue name ''"):
        Job("f", [1], queue="")
    for value, shown in ((math.nan, "nan"), (math.inf, "inf"), ([-math.inf], "-inf")):
        with pytest.raises(TypeError, match=rf"cannot be sent: args\[0\]\S* is {shown},"):
            client.push(Job("f", [value]))
    with pytest.raises(TypeError, match=r"args\[0\].x is nan"):
        client.push_bulk([Job("f", [{"x": math.nan}])])
    assert client.info()["faktory"]["queues"] == {}


def test_keyword_only_parameters_are_refused() -> None:
    def send(address: str, *, subject: str) -> None: ...

    def anything(**fields: Any) -> None: ...

    for func in (send, anything):
        with pytest.raises(TypeError, match="positional job argument"):
            task(func)


def test_scheduled_and_bulk_pushes(client: Client) -> None:
    images = resize.using(client)
    images.push_in(timedelta(hours=1), 1)
    images.push_at(datetime.now(UTC) + timedelta(days=1), 2, width=3)
    assert client.info()["faktory"]["sets"]["scheduled"] == 2
    done = images.push_bulk([images.job(n) for n in range(5)])
    assert [p.queue for p in done.pushed] == ["images"] * 5 and done.refused == {}
    assert client.info()["faktory"]["queues"]["images"] == 5
    urgent = images.with_options(queue="urgent", priority=9).push(1)
    assert urgent.queue == "urgent" and fetch_one(client, "urgent")["priority"] == 9


async def test_worker_runs_declared_tasks(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    seen: list[tuple[Any, ...]] = []

    @task(queue="work")
    def record(*values: int) -> None:
        seen.append(values)

    worker = Worker(werk_server.url, queues=["work"], concurrency=2)
    worker.include(record)
    record.using(client).push(1, 2, 3)
    start_worker(worker)
    await async_wait_until(lambda: seen == [(1, 2, 3)])


def test_a_producer_that_never_runs_a_worker(
    tmp_path: Path, werk_server: ServerProcess, client: Client
) -> None:
    (tmp_path / "app_tasks.py").write_text(
        textwrap.dedent(
            """
            from werk.client import task

            @task(queue="mail")
            def send_email(address: str, subject: str = "Hello") -> None:
                raise AssertionError("never runs in the producer")
            """
        )
    )
    script = "from app_tasks import send_email; print(send_email.push('ann@x.org').jid)"
    env = {**os.environ, "WERK_URL": werk_server.url}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    job = fetch_one(client, "mail")
    assert job["jid"] == done.stdout.strip() and job["args"] == ["ann@x.org"]


def test_werk_worker_loads_a_list_of_tasks() -> None:
    args = build_parser().parse_args(["worker", "app:tasks", "-c", "3"])
    worker = build_worker([resize, report], args)
    assert set(worker.registry) == {"resize", "Report"}
    assert worker.registry["resize"].timeout == 9.5 and worker.registry["Report"].is_async


def test_without_queues_a_worker_fetches_its_tasks_queues_and_default() -> None:
    worker = Worker()
    assert worker.queues.names == ("default",) and not worker.queues.weighted
    worker.include(resize, report)  # queues "images" and None (default)
    assert worker.queues.names == ("default", "images") and worker.queues.weighted
    assert set(worker.fetch_call().data.split(b"\r\n")[0].split()[1:]) == {b"default", b"images"}
    given = Worker(queues=["critical"])
    given.include(resize)
    assert given.queues.names == ("critical",)
    cli = build_worker([resize], build_parser().parse_args(["worker", "app:t", "-q", "low"]))
    assert cli.queues.names == ("low",)


async def test_worker_fetches_a_declared_queue_without_being_told(
    werk_server: ServerProcess, client: Client, start_worker: Start
) -> None:
    seen: list[str] = []

    @task(queue="reports")
    def build(name: str) -> None:
        seen.append(name)

    worker = Worker(werk_server.url, concurrency=1)
    worker.include(build)
    build.using(client).push("q3")
    client.push(Job("build", ["plain"]))  # the default queue is still served
    start_worker(worker)
    await async_wait_until(lambda: sorted(seen) == ["plain", "q3"])
