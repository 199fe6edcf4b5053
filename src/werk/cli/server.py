"""``werk server``: build the configuration, run the server, own the signals.

Flags override the environment, which overrides ``conf.d/*.toml``, which overrides the
defaults (:mod:`werk.server.settings`). SIGTERM and SIGINT stop the server gracefully (a
second signal forces the exit); SIGHUP reloads the configuration files and applies what
can change live (passwords, limits, log level and format, TLS certificate, backups,
statsd, and every :attr:`Server.reload_hooks`). Building the server and registering its
web UI happens here, one level above both (:func:`build_server`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any, NoReturn

from werk.errors import StorageError
from werk.server.config import ENVIRONMENTS, ServerConfig
from werk.server.settings import LOG_FORMATS, LOG_LEVELS, ConfigError, load_config

if TYPE_CHECKING:
    from werk.server.server import Server

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
log = logging.getLogger("werk")


class StartError(Exception):
    """The server could not start; the reason is already logged."""


def register(subparsers: Any) -> None:
    """Add the ``server`` subcommand."""
    parser = subparsers.add_parser(
        "server",
        help="run the Werk server (work protocol, web UI; embedded store, Redis or PostgreSQL)",
        description="Run the server: Faktory's work protocol on --binding, the web UI on"
        " --web-binding, jobs in the embedded SQLite store in --data-dir (or in Redis or"
        " PostgreSQL with --storage). Flags override the environment (WERK_*), which overrides"
        " <config dir>/conf.d/*.toml. The first log lines say what it runs with. SIGTERM or"
        " Ctrl-C stops it gracefully, SIGHUP reloads the configuration files.",
    )
    add = parser.add_argument
    add("-b", "--binding", help="host:port for the work protocol (default localhost:7419)")
    add(
        "-w",
        "--web-binding",
        help="host:port for the web UI; :0 disables it (default localhost:7420)",
    )
    add(
        "-d",
        "--data-dir",
        help="data directory of the embedded store (default ~/.werk/db, or /var/lib/werk/db"
        " in staging and production)",
    )
    add("-c", "--config-dir", help="configuration directory (default ~/.werk, or /etc/werk)")
    add(
        "-e",
        "--environment",
        choices=ENVIRONMENTS,
        help="staging and production require a password (default $WERK_ENV, else development)",
    )
    add("-l", "--log-level", choices=LOG_LEVELS, help="log level (default info)")
    add("--log-format", choices=LOG_FORMATS, help="text (Faktory's lines) or json (default text)")
    add(
        "--storage",
        help="storage URL: redis://host:6379/0 (also rediss://, unix://) or"
        " postgresql://user@host/db (default: embedded SQLite)",
    )
    add(
        "--durability",
        choices=("fsync", "os"),
        help="+OK to a PUSH after the fsync (default) or once the OS has the write",
    )
    add(
        "--max-line",
        type=int,
        help="longest command line accepted, in bytes (default 16 MiB: 16777216)",
    )
    add("--max-connections", type=int, help="most identified connections (default 2000)")
    add(
        "--idle-timeout",
        type=float,
        help="close producer connections silent this many seconds (default 0: never)",
    )
    parser.set_defaults(func=run)


def flags_of(args: argparse.Namespace) -> dict[str, Any]:
    """Return the flags given on the command line, by :class:`ServerConfig` field name."""
    names = ["binding", "web_binding", "data_dir", "config_dir", "environment", "log_level"]
    names += ["log_format", "max_line", "max_connections", "idle_timeout", "durability"]
    flags = {name: getattr(args, name, None) for name in names}
    flags["storage_url"] = getattr(args, "storage", None)
    return flags


class TextFormatter(logging.Formatter):
    """Faktory's log line: level letter, UTC time with milliseconds, message; a worker's
    line from inside a job puts ``[jobtype jid]`` before the message (the record's
    ``job_prefix``, :class:`werk.client.joblog.JobContextFilter`)."""

    def format(self, record: logging.LogRecord) -> str:
        """Return one line (plus the traceback, if any)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        message = record.__dict__.get("job_prefix", "") + record.getMessage()
        line = f"{record.levelname[0]} {stamp}.{int(record.msecs):03d}Z {message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


JSON_EXTRAS = ("jid", "jobtype", "wid")
"""Record attributes (``logging``'s ``extra=``) a JSON line carries when a record has them."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``msg``, the
    :data:`JSON_EXTRAS` the record has (the worker's job lines carry ``jid`` and
    ``jobtype``), and ``exc`` (the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in JSON_EXTRAS:
            if key in record.__dict__:
                entry[key] = record.__dict__[key]
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def log_handler(fmt: str = "text") -> logging.Handler:
    """A handler writing to stderr, one line per event, as text (Faktory's format) or JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    return handler


def setup_logging(level: str, fmt: str = "text") -> None:
    """Log to stderr, one line per event, as text (Faktory's format) or JSON."""
    handler = log_handler(fmt)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])


def build_config(args: argparse.Namespace) -> ServerConfig:
    """Turn the configuration files, the environment and the flags into a config.

    Raises:
        ConfigError: something is invalid, or a required password is missing.
    """
    return load_config(flags_of(args))


def build_server(config: ServerConfig) -> Server:
    """Return a server (not started) with its web UI registered, unless ``web_binding`` is
    ``None`` or its port negative."""
    from werk.server.server import Server
    from werk.webui.server import WebServer

    server = Server(config)
    if config.web_binding is not None and config.web_binding[1] >= 0:
        server.register(WebServer(server))
    return server


async def serve(config: ServerConfig, args: argparse.Namespace) -> None:
    """Run a server until SIGTERM or SIGINT, then stop it gracefully; SIGHUP reloads."""
    server = build_server(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloads: set[asyncio.Task[None]] = set()

    def on_signal(name: str) -> None:
        if stop.is_set():
            exit_at_once()
        log.info("%s: stopping gracefully (send it again to exit at once)", name)
        stop.set()

    def on_hup() -> None:
        task = loop.create_task(reload(server, args))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    try:
        await server.start()
    except (StorageError, ConfigError, OSError) as exc:
        log.error("cannot start: %s", exc)  # the reason first, then the clean-up lines
        await server.stop()  # release the store (and its lock) a half-started server holds
        raise StartError(str(exc)) from exc
    except BaseException:
        await server.stop()
        raise
    await stop.wait()
    await server.stop()
    await keep_the_second_signal(loop)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def exit_at_once(*_: object) -> NoReturn:
    """A second SIGTERM or SIGINT: log it and exit with status 1 (every ``+OK`` was only
    sent after its commit, so this loses nothing that was acknowledged)."""
    log.warning("second signal: exiting now")
    os._exit(1)


async def keep_the_second_signal(loop: asyncio.AbstractEventLoop) -> None:
    """After ``stopped``, keep answering a second signal until the process is gone.

    Closing the event loop gives SIGTERM and SIGINT back to their defaults (killed by the
    signal, status 143 or 130, nothing logged), so the loop's handlers are swapped for
    process-level ones first. The signals are blocked meanwhile, so none is lost between
    the two, and the loop gets a few turns to handle one it already caught; :func:`run`
    then exits without the interpreter's teardown, during which no handler could run.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        for _ in range(5):
            await asyncio.sleep(0)  # a signal caught before the block calls on_signal now
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
            signal.signal(sig, exit_at_once)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


async def reload(server: Any, args: argparse.Namespace) -> None:
    """Re-read the configuration (SIGHUP) and apply it; a bad file keeps the old one."""
    log.info("SIGHUP: reloading the configuration")
    try:
        config = build_config(args)
        await server.reload(config)
    except ConfigError as exc:
        log.error("reload failed, configuration unchanged: %s", exc)
        return
    setup_logging(server.config.log_level, server.config.log_format)


def run(args: argparse.Namespace) -> int:
    """Run ``werk server``."""
    try:
        config = build_config(args)
    except ConfigError as exc:
        setup_logging("info")
        log.error("cannot start: %s", exc)
        return 1
    setup_logging(config.log_level, config.log_format)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(serve(config, args))
    except StartError:
        return 1  # serve() logged the reason
    except (StorageError, ConfigError, OSError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    # Stopped and the store closed. Exit now: in the interpreter's teardown a second signal
    # could be neither answered nor told apart from a clean exit.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
