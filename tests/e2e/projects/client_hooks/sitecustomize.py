"""Record every HTTP request the bentoml 1.4 client makes (loaded via PYTHONPATH).

When ``YATAI_E2E_HTTP_TRACE`` names a file, ``httpx.Client.send`` is wrapped so
that each request appends ``METHOD URL STATUS`` to it. The transmission tests
read it to tell which upload/download path the server made the client take
(proxy, presigned single PUT or presigned multipart). bentoml's own logging
set-up cannot silence this, unlike a logging handler.
"""

import os

_TRACE = os.environ.get("YATAI_E2E_HTTP_TRACE")

if _TRACE:
    try:
        import httpx
    except ImportError:  # not a client that uses httpx: nothing to trace
        httpx = None

    if httpx is not None:
        _send = httpx.Client.send

        def _traced_send(self, request, *args, **kwargs):
            response = _send(self, request, *args, **kwargs)
            with open(_TRACE, "a", encoding="utf-8") as f:
                f.write(f"{request.method} {request.url} {response.status_code}\n")
            return response

        httpx.Client.send = _traced_send
