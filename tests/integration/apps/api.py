# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""The API the scenario tests protect: a Flask app served by gunicorn.

Routes: /api/v1/heavy-task burns CPU (the expensive request a flood makes
someone pay for), /health is cheap, /stats tells the test what the app did
(requests served by route and status, heavy-task answers by client address,
its own CPU seconds) and is not counted itself.

Run with Debian's Python (/usr/bin/python3 -m gunicorn ... api:app), one
worker process with threads, so the counters are one process's.

With API_LIMIT set (e.g. "5 per minute"), /api/v1/heavy-task is limited by
Flask-Limiter instead (memory storage, keyed by the client address): the
side-by-side comparison with sluice.
"""
import os
import resource
import threading
import time

from flask import Flask, jsonify, request

app = Flask(__name__)
_lock = threading.Lock()
_served = {}
_heavy_by_source = {}
HEAVY_TASK_SECONDS = float(os.environ.get("API_HEAVY_SECONDS", "0.02"))


def _count(route, status):
    with _lock:
        key = f"{route} {status}"
        _served[key] = _served.get(key, 0) + 1


@app.after_request
def _after(response):
    if request.path != "/stats":
        _count(request.path, response.status_code)
    if request.path == "/api/v1/heavy-task" and response.status_code == 200:
        with _lock:
            src = request.remote_addr or "?"
            if src.startswith("::ffff:"):
                src = src[len("::ffff:"):]
            _heavy_by_source[src] = _heavy_by_source.get(src, 0) + 1
    return response


def heavy_task():
    end = time.thread_time() + HEAVY_TASK_SECONDS
    x = 0
    while time.thread_time() < end:
        x += 1
    return jsonify(result="done", spins=x)


def health():
    return jsonify(status="ok")


@app.route("/stats")
def stats():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with _lock:
        served = dict(_served)
        by_source = dict(_heavy_by_source)
    return jsonify(served=served, heavy_task_by_source=by_source,
                   cpu_seconds=usage.ru_utime + usage.ru_stime)


_limit = os.environ.get("API_LIMIT")
if _limit:
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://")
    heavy_task = limiter.limit(_limit)(heavy_task)

app.add_url_rule("/api/v1/heavy-task", "heavy_task", heavy_task)
app.add_url_rule("/health", "health", health)
