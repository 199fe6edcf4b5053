"""The task API as mypy must accept it (checked by tests/client/test_task_typing.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from werk.client import Client, Job, Pushed, Task, Worker, chain, task


@task(queue="mail", retry=5, timeout=30)
def send_email(address: str, subject: str = "Hello") -> None: ...


@task
def resize(image_id: int, width: int, height: int = 0) -> bool:
    return width > 0


@task("Crawl", reserve_for=600)
async def crawl(url: str) -> None: ...


send_email.push("ann@example.com", subject="Welcome")
pushed: Pushed[bool] = resize.push(42, 800)
done: bool = pushed.result(timeout=10)
jid: str = resize.push(42, width=800, height=600).jid
resize.push_in(timedelta(minutes=5), 42, 800)
resize.push_at(datetime(2030, 1, 1, tzinfo=UTC), image_id=42, width=800)
resize.with_options(queue="urgent", priority=9).push(1, 2)
resize.using(Client("tcp://localhost:7419")).push(1, 2)
result = resize.push_bulk([resize.job(n, 100) for n in range(10)])
refused: dict[str, str] = result.refused
job: Job = crawl.job("https://example.com")
ok: bool = resize(1, 2)  # calling the task calls the function
typed: Task[[int, int, int], bool] = resize
worker = Worker()
worker.include(resize, crawl)
step: Job = resize.step(800, height=600)  # a chain step: image_id comes from the step before
last: Pushed[Any] = chain(crawl.job("https://example.com"), resize.step(800)).push()
