"""Minimal reference servers the shipped services are measured against.

Each is a script, run as ``python bench/servers/<file>.py PORT [...]`` (so PyPy can run
the Twisted ones from its own venv without the repo's packages), binds 127.0.0.1 and
stops on SIGTERM.
"""
