"""Prompts the gateway writes for its callers.

`templates.py` holds the named templates of the config's `templates` section, compiled once at
start (Jinja2, sandboxed): a request names one with its variables and the edge renders it into the
body before the pipeline runs, so DLP and the caches see the rendered prompt like any other.
It is imported only when templates are configured (Jinja2 adds about 90 ms to start-up).
"""
