"""Werk's benchmark suite (``werk bench``): throughput, latency, depth and memory.

Run by hand, never as part of the tests. Every scenario starts its own ``werk server``
and worker processes on this machine and reports medians over several rounds.
"""
