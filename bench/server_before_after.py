"""Two servers in one run, the same worker: drain rate, worker and server CPU per job.

"Before" is ``src`` of ``--before`` (default ``d2e14c7``, the last commit before the reply
outbox), "after" this checkout's ``src``; both run as ``werk server`` (SQLite) side by side,
and each pass drains N jobs from one of them with the ``werk worker`` processes of
``bench/worker_before_after.py`` (this checkout's worker, or with ``--old-worker`` the one
of ``afcf964``), alternating before/after, after/before, ... Medians and after/before
ratios are printed at the end.
Written for the reply outbox (``werk.server.outbox``)::

    .venv/bin/python bench/server_before_after.py -n 20000 --passes 4
    .venv/bin/python bench/server_before_after.py --before 77a3b8e --jobs anoop --old-worker
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from worker_before_after import ROOT, Pass, _extract, build_before, one_pass, report

from werk.benchmarks.harness import BenchServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="jobs per pass (default 20,000)")
    parser.add_argument("--passes", type=int, default=4, help="passes per server (default 4)")
    parser.add_argument("--jobs", default="anoop,noop", help="job types: noop (def), anoop")
    parser.add_argument("--before", default="d2e14c7", help="commit of the before server")
    parser.add_argument("--old-worker", action="store_true", help="afcf964's worker")
    args = parser.parse_args()
    results: dict[tuple[str, str], list[Pass]] = {}
    with tempfile.TemporaryDirectory(prefix="werk-server-before-") as tmp:
        _extract(args.before, ("src",), Path(tmp) / "before")
        trees = {"before": Path(tmp) / "before/src", "after": ROOT / "src"}
        worker = build_before("afcf964", Path(tmp) / "w") if args.old_worker else ROOT / "src"
        servers: dict[str, BenchServer] = {}
        try:
            for version, src in trees.items():
                os.environ["PYTHONPATH"] = str(src)  # the server's code
                servers[version] = BenchServer("sqlite").start()
            os.environ.pop("PYTHONPATH")
            for number in range(args.passes):
                order = ["before", "after"] if number % 2 == 0 else ["after", "before"]
                for jobtype in args.jobs.split(","):
                    for version in order:
                        server = servers[version]
                        assert server.proc is not None
                        figures = one_pass(server.url, server.proc.pid, worker, jobtype, args.n, 2)
                        results.setdefault((jobtype, version), []).append(figures)
                        print(
                            f"pass {number + 1} {jobtype:>5} {version:>6}: {figures[0]:8.0f}"
                            f" jobs/s {figures[1]:6.1f} worker CPU us/job"
                            f" {figures[2]:6.1f} server CPU us/job",
                            flush=True,
                        )
        finally:
            for server in servers.values():
                server.stop()
    report(results, args, f" (server before {args.before})")


if __name__ == "__main__":
    main()
