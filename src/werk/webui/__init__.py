"""The web UI on port 7420: pages, actions, ``/stats``, ``/health``, ``/metrics``."""
