"""Two views: one enqueues a task, one reads (and may wait for) its result."""

from django.http import HttpRequest, JsonResponse
from django.tasks import TaskResultStatus, default_task_backend
from django.tasks.exceptions import TaskResultDoesNotExist

from shop.tasks import place_order


def place(request: HttpRequest) -> JsonResponse:
    result = place_order.enqueue(request.POST["item"], quantity=int(request.POST["quantity"]))
    return JsonResponse({"id": result.id, "status": result.status}, status=202)


def result(request: HttpRequest, result_id: str) -> JsonResponse:
    wait = float(request.GET.get("wait", 0))
    try:
        found = default_task_backend.get_result(result_id, timeout=wait)
    except TaskResultDoesNotExist:
        return JsonResponse({"error": "no such task"}, status=404)
    body = {
        "status": found.status,
        "task": found.task.module_path,
        "args": found.args,
        "kwargs": found.kwargs,
        "errors": [error.exception_class_path for error in found.errors],
        "worker_ids": found.worker_ids,
    }
    if found.status == TaskResultStatus.SUCCESSFUL:
        body["return_value"] = found.return_value
    return JsonResponse(body)
