"""The task API misused: mypy must report an error on each line marked ``# E: code``
(checked by tests/client/test_task_typing.py)."""

from __future__ import annotations

from datetime import timedelta

from werk.client import task


@task(queue="images")
def resize(image_id: int, width: int, height: int = 0) -> bool:
    return width > 0


resize.push("42", 800)  # E: arg-type
resize.push(42)  # E: call-arg
resize.push(42, 800, depth=3)  # E: call-arg
resize.push_in(timedelta(minutes=5), "42", 800)  # E: arg-type
resize.push_at(1.0, 42, width="wide")  # E: arg-type
resize.job(42, 800, 600, 1)  # E: call-arg
name: str = resize.push(42, 800)  # E: assignment
resize(42, width=None)  # E: arg-type
resize.step("wide")  # E: arg-type
resize.step(800, 600, 1)  # E: call-arg
