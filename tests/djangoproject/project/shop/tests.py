"""Django's test client end to end against a real Werk server and a real worker process
(``manage.py werk_worker``), and the backend's documented behaviours (InvalidTask,
priorities, queues, run_after, takes_context, results and errors in TaskResult terms)."""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.tasks import TaskResultStatus, default_task_backend, task, task_backends
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.test import SimpleTestCase, TransactionTestCase, override_settings
from django.utils import timezone

from shop import tasks
from shop.models import Order

REPO = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO))  # the suite's ServerProcess helper

from tests.helpers import ServerProcess  # noqa: E402

from werk.client import Client, Job, JobTimeoutError  # noqa: E402
from werk.contrib.django import errors  # noqa: E402
from werk.contrib.django.jobs import task_error, werk_priority  # noqa: E402
from werk.contrib.django.management.commands.werk_worker import setup_logging  # noqa: E402
from werk.job import TEST_MIN_RESERVE_FOR_ENV  # noqa: E402

WAIT = 30
BACKEND = "werk.contrib.django.WerkBackend"
MANAGE = Path(__file__).resolve().parents[1] / "manage.py"


def module_level(n: int) -> int:
    return n


class WorkerLogging(SimpleTestCase):
    """werk_worker logs as werk worker does, unless the project's LOGGING routes werk's."""

    def setUp(self) -> None:
        self.werk, self.root = logging.getLogger("werk"), logging.getLogger()
        self.django = logging.getLogger("django")
        saved = (self.werk.handlers[:], self.werk.level, self.root.handlers[:])
        self.addCleanup(self._restore, *saved, self.django.handlers[:])
        # JSON logs prints: setup_logging replaces the streams
        self.addCleanup(setattr, sys, "stdout", sys.stdout)
        self.addCleanup(setattr, sys, "stderr", sys.stderr)

    def _restore(
        self,
        handlers: list[logging.Handler],
        level: int,
        root: list[logging.Handler],
        django: list[logging.Handler],
    ) -> None:
        self.werk.handlers[:], self.root.handlers[:] = handlers, root
        self.django.handlers[:] = django
        self.werk.setLevel(level)
        logging.captureWarnings(False)

    def test_no_project_logging_gets_werk_workers_lines(self) -> None:
        # Django's default logging: the worker's handler serves every logger (one format),
        # and drops django.tasks' lines, which repeat the worker's own
        self.werk.handlers[:], self.root.handlers[:] = [], []
        setup_logging(None, "json")
        [handler] = self.root.handlers
        self.assertEqual((self.werk.handlers, self.werk.level), ([], logging.INFO))
        record = logging.LogRecord("werk.worker", logging.INFO, "f", 1, "job %s", ("j1",), None)
        self.assertEqual(json.loads(handler.format(record))["msg"], "job j1")
        task_line = logging.LogRecord("django.tasks", logging.ERROR, "f", 1, "Task", (), None)
        request = logging.LogRecord("django.request", logging.ERROR, "f", 1, "bad", (), None)
        self.assertEqual((handler.filter(task_line), bool(handler.filter(request))), (0, True))
        self.assertFalse([h for h in self.django.handlers if type(h) is logging.StreamHandler])

    def test_the_projects_handlers_are_kept_and_l_sets_the_level(self) -> None:
        mine = logging.StreamHandler()
        self.werk.handlers[:] = [mine]
        setup_logging(None, "text")
        self.assertEqual(self.werk.handlers, [mine])
        self.werk.handlers[:], self.root.handlers[:] = [], [mine]
        setup_logging("debug", "text")
        self.assertEqual((self.werk.handlers, self.werk.level), ([], logging.DEBUG))

    @override_settings(LOGGING={"version": 1, "loggers": {"django": {"level": "INFO"}}})
    def test_a_projects_logging_setting_is_left_as_it_is(self) -> None:
        self.werk.handlers[:], self.root.handlers[:] = [], []
        django = self.django.handlers[:]
        setup_logging(None, "text")
        self.assertEqual((len(self.werk.handlers), self.root.handlers), (1, []))
        self.assertEqual(self.django.handlers, django)


class EndToEnd(TransactionTestCase):
    """A view enqueues, a Werk worker runs the task, a view reads the result."""

    server: ServerProcess
    worker: subprocess.Popen[bytes]
    worker_log: Path
    data: tempfile.TemporaryDirectory[str]

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.data = tempfile.TemporaryDirectory()
        cls.server = ServerProcess(Path(cls.data.name) / "werk").start()
        os.environ["WERK_URL"] = cls.server.url
        # DEBUG on: Django's console handler would print its own task lines too
        env = {**os.environ, "SHOP_DB": str(connection.settings_dict["NAME"]), "SHOP_DEBUG": "1"}
        manage = Path(__file__).resolve().parents[1] / "manage.py"
        cls.worker_log = Path(cls.data.name) / "worker.log"
        cls.worker = subprocess.Popen(
            [
                sys.executable,
                str(manage),
                "werk_worker",
                "-q",
                "default",
                "-q",
                "orders",
                "-c",
                "1",
            ],
            env=env,
            stderr=cls.worker_log.open("wb"),
        )

    @classmethod
    def tearDownClass(cls) -> None:
        cls.worker.send_signal(signal.SIGTERM)
        cls.worker.wait(30)
        cls.server.kill()
        cls.data.cleanup()
        super().tearDownClass()

    def test_a_view_enqueues_and_a_view_reads_the_result(self) -> None:
        placed = self.client.post("/orders", {"item": "tea", "quantity": "3"})
        self.assertEqual(placed.status_code, 202)
        self.assertEqual(placed.json()["status"], "READY")
        found = self.client.get(f"/results/{placed.json()['id']}", {"wait": WAIT}).json()
        self.assertEqual(found["status"], "SUCCESSFUL")
        self.assertEqual(found["task"], "shop.tasks.place_order")
        self.assertEqual((found["args"], found["kwargs"]), (["tea"], {"quantity": 3}))
        self.assertEqual(len(found["worker_ids"]), 1)
        order = Order.objects.get(pk=found["return_value"]["order"])  # written by the worker
        self.assertEqual((order.item, order.quantity), ("tea", 3))
        self.assertEqual(self.client.get("/results/nosuchtask1").status_code, 404)

    def test_results_and_errors_in_django_terms(self) -> None:
        backend = default_task_backend
        added = tasks.add.enqueue(2, 3)
        failed = tasks.out_of_stock.enqueue("milk")
        done = backend.get_result(added.id, timeout=WAIT)
        self.assertEqual((done.status, done.return_value), (TaskResultStatus.SUCCESSFUL, 5))
        self.assertTrue(done.is_finished and done.finished_at >= done.started_at)
        self.assertEqual(tasks.add.get_result(added.id).return_value, 5)
        broken = backend.get_result(failed.id, timeout=WAIT)
        self.assertEqual(broken.status, TaskResultStatus.FAILED)
        [error] = broken.errors
        self.assertEqual(error.exception_class_path, "builtins.LookupError")
        self.assertIs(error.exception_class, LookupError)
        self.assertTrue(error.traceback.startswith("Traceback (most recent call last):\n"))
        self.assertRegex(error.traceback, r'\n  File ".*tasks\.py", line \d+, in out_of_stock\n')
        self.assertTrue(error.traceback.endswith("LookupError: milk is out of stock"))
        with self.assertRaisesMessage(ValueError, "Task failed"):
            _ = broken.return_value
        # The worker's own output: werk worker's lines, the failure with its traceback
        log = self.worker_log.read_text()
        self.assertRegex(log, rf"\nI \S+Z job {added.id} shop\.tasks\.add: done in ")
        self.assertRegex(log, rf"\nW \S+Z job {failed.id} shop\.tasks\.out_of_stock: ")
        self.assertIn("LookupError: milk is out of stock", log)
        self.assertEqual(log.count("Traceback (most recent call last)"), 1)  # werk's only
        self.assertNotIn("Task id=", log)
        added.refresh()
        self.assertEqual(added.status, TaskResultStatus.SUCCESSFUL)
        with self.assertRaises(TaskResultDoesNotExist):
            backend.get_result("nosuchtask1")

    def test_context_async_tasks_and_connections(self) -> None:
        backend = default_task_backend
        info = tasks.attempt_info.enqueue("hello")
        doubled = tasks.double.enqueue(21)
        first = tasks.place_order.enqueue("cake")
        closed = tasks.connection_was_closed.enqueue()
        value = backend.get_result(info.id, timeout=WAIT).return_value
        self.assertEqual(value, {"attempt": 1, "id": info.id, "label": "hello"})
        self.assertEqual(backend.get_result(doubled.id, timeout=WAIT).return_value, 42)
        backend.get_result(first.id, timeout=WAIT)
        self.assertIs(backend.get_result(closed.id, timeout=WAIT).return_value, True)

    async def test_aenqueue_and_aget_result(self) -> None:
        result = await tasks.add.aenqueue(20, 22)
        found = await default_task_backend.aget_result(result.id, timeout=WAIT)
        self.assertEqual(found.return_value, 42)
        self.assertEqual((await tasks.add.aget_result(result.id)).return_value, 42)

    def test_a_plain_job_on_a_served_queue_is_failed_with_a_clear_line(self) -> None:
        # A werk.client task's job on a queue this worker serves: FAILed, as Faktory's
        # workers do, with a line naming the queue and what this worker runs
        with Client(self.server.url) as client:
            jid = client.push(Job("add", [1, 2], retry=0, result_ttl=60))
            state = client.job_state(jid, timeout=WAIT)
        self.assertEqual(state.state, "failed")
        message = (
            f"job {jid} add: no function registered for jobtype 'add' (from queue 'default';"
            " this worker runs Django tasks only (a django.tasks task's module path, e.g."
            " shop.tasks.add)): push it to a queue that only workers running it fetch\n"
        )
        self.assertRegex(self.worker_log.read_text(), r"\nE \S+Z " + re.escape(message))

    def test_the_job_on_the_wire(self) -> None:
        # A queue no worker here listens to: the job stays for us to look at.
        later = timezone.now() + timedelta(minutes=5)
        scheduled = tasks.report.using(run_after=later).enqueue("2024-05-01", detailed=True)
        queued = tasks.report.using(priority=100).enqueue("2024-05-02")
        self.assertEqual(default_task_backend.get_result(scheduled.id).status, "READY")
        with Client(self.server.url) as client:
            self.assertEqual(client.job_state(scheduled.id).state, "scheduled")
            job = client.fetch("reports")
        assert job is not None
        self.assertEqual(job["jid"], queued.id)
        self.assertEqual((job["jobtype"], job["args"]), ("shop.tasks.report", ["2024-05-02"]))
        self.assertEqual((job["queue"], job["priority"], job["retry"]), ("reports", 9, 0))
        self.assertEqual(job["reserve_for"], 120)  # OPTIONS["RESERVE_FOR"]
        self.assertEqual(job["custom"]["django"], {"kwargs": {}, "backend": "default"})
        self.assertEqual(job["custom"]["result_ttl"], 3600)
        running = default_task_backend.get_result(queued.id)
        self.assertEqual(running.status, TaskResultStatus.RUNNING)


class JsonWorkerOutput(TransactionTestCase):
    """``werk_worker --log-format json`` writes JSON lines only, with DEBUG on (Django's
    console handler), and a failed task's traceback once."""

    def test_only_json_lines_and_one_traceback(self) -> None:
        data = tempfile.TemporaryDirectory()
        self.addCleanup(data.cleanup)
        server = ServerProcess(Path(data.name) / "werk").start()
        self.addCleanup(server.kill)
        env = {
            **os.environ,
            "SHOP_DB": str(connection.settings_dict["NAME"]),
            "WERK_URL": server.url,
            "SHOP_DEBUG": "1",
        }
        manage = Path(__file__).resolve().parents[1] / "manage.py"
        out, err = Path(data.name) / "out.log", Path(data.name) / "err.log"
        worker = subprocess.Popen(
            [sys.executable, str(manage), "werk_worker", "-q", "default", "--log-format", "json"],
            env=env,
            stdout=out.open("wb"),
            stderr=err.open("wb"),
        )
        self.addCleanup(worker.kill)
        configured = settings.TASKS["default"]
        here = {**configured, "OPTIONS": {**configured["OPTIONS"], "URL": server.url}}
        with override_settings(TASKS={"default": here}):
            backend = task_backends["default"]
            added = tasks.add.enqueue(1, 2)
            failed = tasks.out_of_stock.enqueue("salt")
            self.assertEqual(backend.get_result(added.id, timeout=WAIT).return_value, 3)
            broken = backend.get_result(failed.id, timeout=WAIT)
            self.assertEqual(broken.status, TaskResultStatus.FAILED)
        worker.send_signal(signal.SIGTERM)
        self.assertEqual(worker.wait(30), 0)
        self.assertEqual(out.read_text(), "")
        lines = [json.loads(line) for line in err.read_text().splitlines()]  # all JSON
        messages = [line["msg"] for line in lines]
        starting = [m for m in messages if m.startswith("worker ") and " starting: " in m]
        self.assertEqual(len(starting), 1)
        self.assertIn("jobtypes Django tasks only", starting[0])  # not "(none)"
        self.assertFalse([m for m in messages if m.startswith("Task id=")])  # django.tasks
        self.assertIn(f"job {added.id} shop.tasks.add: done in ", "\n".join(messages))
        tracebacks = [line for line in lines if "salt is out of stock" in line.get("exc", "")]
        self.assertEqual([line["jid"] for line in tracebacks], [failed.id])


class Validation(SimpleTestCase):
    """Django's documented backend behaviours: what a task may not be."""

    def test_invalid_tasks(self) -> None:
        with self.assertRaisesMessage(InvalidTask, "Queue 'mail' is not valid"):
            tasks.add.using(queue_name="mail")
        with self.assertRaisesMessage(InvalidTask, "module level"):
            task(lambda: None)
        with self.assertRaisesMessage(InvalidTask, "first argument of 'context'"):
            task(takes_context=True)(module_level)
        with self.assertRaisesMessage(InvalidTask, "priority must be a whole number"):
            tasks.add.using(priority=101)
        with self.assertRaisesMessage(InvalidTask, "run_after must be an aware datetime"):
            tasks.add.using(run_after=timezone.now().replace(tzinfo=None))

    @override_settings(
        TASKS={"default": {"BACKEND": "werk.contrib.django.WerkBackend", "QUEUES": []}}
    )
    def test_werk_queue_names(self) -> None:
        self.assertEqual(tasks.add.using(queue_name="any.queue-1").queue_name, "any.queue-1")
        with self.assertRaisesMessage(InvalidTask, "not valid for Werk"):
            tasks.add.using(queue_name="two words")
        # werk.job.QUEUE_NAME's \Z: a name ending in a newline is refused as the server does
        rule = "queue names must match \\A[a-zA-Z0-9._-]+\\z"
        with self.assertRaisesMessage(InvalidTask, rule):
            tasks.add.using(queue_name="mail\n")

    @override_settings(
        TASKS={
            "default": {
                "BACKEND": "werk.contrib.django.WerkBackend",
                "QUEUES": ["ok", "not ok"],
                "OPTIONS": {"RESULT_TTL": 0},
            }
        }
    )
    def test_system_checks(self) -> None:
        ids = sorted(message.id for message in run_checks() if message.id.startswith("werk."))
        self.assertEqual(ids, ["werk.E001", "werk.E002"])

    @override_settings(
        TASKS={
            "default": {
                "BACKEND": BACKEND,
                "QUEUES": ["default"],
                "OPTIONS": {
                    "RESERVE_FR": 120,
                    "RETRY": "twice",
                    "RESERVE_FOR": 86401,
                    "URL": "http://jobs.internal:7419",
                },
            }
        }
    )
    def test_unknown_and_bad_options_are_refused(self) -> None:
        # manage.py check names each; enqueue refuses them where no checks ran (WSGI)
        found = {m.id: m.msg for m in run_checks() if m.id.startswith("werk.")}
        self.assertEqual(sorted(found), ["werk.E003", "werk.E004", "werk.E005", "werk.E006"])
        self.assertEqual(
            found["werk.E003"],
            "unknown OPTIONS key 'RESERVE_FR' (did you mean 'RESERVE_FOR'?); known: URL,"
            " RESULT_TTL, RETRY, RESERVE_FOR",
        )
        self.assertEqual(
            found["werk.E004"],
            "RETRY must be a whole number (0: no retry; -1: no retry, kept dead), not 'twice'",
        )
        self.assertEqual(
            found["werk.E005"],
            "RESERVE_FOR must be a whole number of seconds from 1 to 86400, not 86401",
        )
        self.assertTrue(found["werk.E006"].startswith("URL is not a server URL: unsupported"))
        with self.assertRaisesMessage(ImproperlyConfigured, "TASKS['default']: URL is not a"):
            tasks.add.enqueue(1, 2)

    def test_features_and_priorities(self) -> None:
        backend = task_backends["default"]
        self.assertTrue(backend.supports_defer and backend.supports_async_task)
        self.assertTrue(backend.supports_get_result and backend.supports_priority)
        table = {-100: 1, -88: 1, -87: 2, -13: 4, -12: 5, 0: 5, 12: 5, 13: 6, 50: 7, 88: 9}
        self.assertEqual({p: werk_priority(p) for p in table}, table)
        self.assertEqual(settings.TASKS["default"]["OPTIONS"]["RESULT_TTL"], 3600)


class CrashedWorker(SimpleTestCase):
    """docs/howto/django-tasks.md: a task whose worker dies is failed when its reservation
    expires (Faktory's rule, errtype ReservationExpired): with RETRY 0 it ends FAILED and
    is not run again; with RETRY 1 it is READY again, in the retry set."""

    def test_the_task_of_a_dead_worker(self) -> None:
        data = tempfile.TemporaryDirectory()
        self.addCleanup(data.cleanup)
        env = {TEST_MIN_RESERVE_FOR_ENV: "1"}  # reservations of 1 s, for the test
        server = ServerProcess(Path(data.name) / "werk", env=env).start()
        self.addCleanup(server.kill)
        self.dies_with_its_worker(server, retry=0, status="FAILED", state="failed")
        self.dies_with_its_worker(server, retry=1, status="READY", state="retrying")

    def dies_with_its_worker(
        self, server: ServerProcess, retry: int, status: str, state: str
    ) -> None:
        options = {"URL": server.url, "RESERVE_FOR": 1, "RETRY": retry}
        here = {"BACKEND": BACKEND, "QUEUES": ["default"], "OPTIONS": options}
        with override_settings(TASKS={"default": here}):
            backend = task_backends["default"]
            result = tasks.add.enqueue(2, 3)
            with Client(server.url) as client:
                with Client(server.url) as dying:  # fetches the task, then is gone
                    job = dying.fetch("default")
                assert job is not None
                self.assertEqual((job["jid"], job["reserve_for"]), (result.id, 1))
                deadline = time.monotonic() + WAIT
                while client.job_state(result.id).state != state:
                    self.assertLess(time.monotonic(), deadline)
                    time.sleep(0.05)
            found = backend.get_result(result.id)
        self.assertEqual(found.status, status)
        [error] = found.errors
        self.assertTrue(
            error.traceback.endswith("ReservationExpired: Faktory job reservation expired")
        )
        # Django imports the class: an errtype the server gave has one too.
        self.assertIs(error.exception_class, errors.ReservationExpired)


class WorkerExit(SimpleTestCase):
    """manage.py werk_worker stops as werk worker does: exit 1 after a wrong password,
    with the reason logged and no traceback; exit 2 on a bad flag, naming it."""

    def test_a_wrong_password_and_a_bad_flag(self) -> None:
        data = tempfile.TemporaryDirectory()
        self.addCleanup(data.cleanup)
        server = ServerProcess(Path(data.name) / "werk", password="right").start()
        self.addCleanup(server.kill)
        address = f"{server.host}:{server.port}"
        env = {
            **os.environ,
            "WERK_URL": f"tcp://:wrong@{address}",
            "SHOP_DB": str(Path(data.name) / "shop.sqlite3"),
        }
        command = [sys.executable, str(MANAGE), "werk_worker", "-q", "default"]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(done.returncode, 1, done.stderr)
        self.assertNotIn("Traceback", done.stderr)
        refused = f"the server tcp://:***@{address} refused the password: Invalid password"
        self.assertIn(f"{refused}; stopping\n", done.stderr)
        self.assertTrue(done.stderr.endswith(f"Z worker stopped: {refused}\n"), done.stderr)
        flag = subprocess.run(
            [*command, "-c", "0"], env=env, capture_output=True, text=True, timeout=60
        )
        self.assertEqual(flag.returncode, 2, flag.stderr)
        self.assertIn(
            "werk_worker: error: argument -c/--concurrency: must be a whole number of 1 or"
            " more, not '0'",
            flag.stderr,
        )


class ErrorClasses(SimpleTestCase):
    """Every failed task's TaskError.exception_class imports, whoever named the errtype: a
    Python worker (a builtin), the server (Faktory's and Werk's own errtypes), or a worker in
    another language (a name that is no Python class)."""

    def test_every_errtype_has_an_exception_class(self) -> None:
        expected = {
            "LookupError": LookupError,
            "ReservationExpired": errors.ReservationExpired,
            "Deleted": errors.Deleted,
            "Killed": errors.Killed,
            "Expired": errors.Expired,
            "ChainEnded": errors.ChainEnded,
            "WorkerShutdown": errors.WorkerShutdown,
            "JobTimeout": JobTimeoutError,
            "Faraday::ConnectionFailed": errors.ForeignError,
            "undefined": errors.ForeignError,
            "print": errors.ForeignError,  # a builtin, but no exception
        }
        for errtype, cls in expected.items():
            error = task_error({"errtype": errtype, "message": "m", "backtrace": []})
            self.assertIs(error.exception_class, cls, errtype)
            self.assertTrue(error.traceback.endswith(f"{errtype}: m"))
