"""Test hooks loaded into a bentoml client through PYTHONPATH (see clients.BentoML.env).

* ``YATAI_E2E_HTTP_TRACE=FILE``: every HTTP request the client makes, through
  httpx (bentoml 1.4) or requests (1.0 / 1.1), appends one tab-separated line
  ``METHOD URL STATUS START END`` (wall-clock seconds) to FILE. The tests read
  it to tell which upload/download path the server made the client take, and
  whether two clients' uploads overlapped in time. bentoml's own logging
  set-up cannot silence this, unlike a logging handler.
* ``YATAI_E2E_UPLOAD_RATE=BYTES_PER_SECOND``: everything the process sends over
  sockets is paced to that rate, so that an upload lasts long enough for
  another client's upload to run at the same time.
"""

import os
import socket
import threading
import time

_TRACE = os.environ.get("YATAI_E2E_HTTP_TRACE")
_RATE = float(os.environ.get("YATAI_E2E_UPLOAD_RATE") or 0)


def _record(method, url, status, start):
    with open(_TRACE, "a", encoding="utf-8") as f:
        f.write(f"{method}\t{url}\t{status}\t{start:.6f}\t{time.time():.6f}\n")


def _trace_httpx():
    try:
        import httpx
    except ImportError:  # this client does not use httpx
        return
    send = httpx.Client.send

    def traced_send(self, request, *args, **kwargs):
        start = time.time()
        response = send(self, request, *args, **kwargs)
        _record(request.method, request.url, response.status_code, start)
        return response

    httpx.Client.send = traced_send


def _trace_requests():
    try:
        import requests
    except ImportError:  # this client does not use requests
        return
    send = requests.Session.send

    def traced_send(self, request, **kwargs):
        start = time.time()
        response = send(self, request, **kwargs)
        _record(request.method, request.url, response.status_code, start)
        return response

    requests.Session.send = traced_send


def _pace_sockets(rate):
    """Make ``socket.sendall``/``send`` keep the process at ``rate`` bytes/s overall.

    No credit builds up while idle: each send is due ``len / rate`` seconds
    after the later of now and the previous send's due time.
    """
    lock = threading.Lock()
    due = [0.0]
    sendall, send = socket.socket.sendall, socket.socket.send

    def pace(n):
        with lock:
            now = time.monotonic()
            due[0] = max(due[0], now) + n / rate
            delay = due[0] - now
        if delay > 0:
            time.sleep(delay)

    def paced_sendall(self, data, *args):
        result = sendall(self, data, *args)
        pace(len(data))
        return result

    def paced_send(self, data, *args):
        n = send(self, data, *args)
        pace(n)
        return n

    socket.socket.sendall = paced_sendall
    socket.socket.send = paced_send


if _TRACE:
    _trace_httpx()
    _trace_requests()
if _RATE > 0:
    _pace_sockets(_RATE)
