"""The project's tasks: each shows one part of django.tasks on Werk."""

from django.db import connection
from django.tasks import TaskContext, task

from shop.models import Order


@task(queue_name="orders", priority=50)
def place_order(item: str, quantity: int = 1) -> dict[str, object]:
    order = Order.objects.create(item=item, quantity=quantity)
    return {"order": order.pk, "item": item, "quantity": quantity}


@task
def add(a: int, b: int) -> int:
    return a + b


@task
async def double(n: int) -> int:
    return n * 2


@task(takes_context=True)
def attempt_info(context: TaskContext, label: str) -> dict[str, object]:
    return {"attempt": context.attempt, "id": context.task_result.id, "label": label}


@task
def out_of_stock(item: str) -> None:
    raise LookupError(f"{item} is out of stock")


@task
def connection_was_closed() -> bool:
    # The worker closes connections between jobs (CONN_MAX_AGE is 0 here).
    return connection.connection is None


@task(queue_name="reports", priority=-100)
def report(day: str, *, detailed: bool = False) -> str:
    return day
