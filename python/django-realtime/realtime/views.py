"""The bridge endpoint (docs/bridge.md, protocol version 1).

``POST`` only (405 otherwise). The signature is checked first, on the raw
body: a missing, malformed, stale (outside REALTIME_REPLAY_WINDOW) or wrong
signature is answered 401 and nothing runs. A body over REALTIME_MAX_BODY_BYTES
(64 MiB by default; Django's DATA_UPLOAD_MAX_MEMORY_SIZE does not apply) is
answered 413, one that is not a version-1 request 400; with REALTIME_SECRET
unset every request is answered 503 (and logged). Each of these fails the
request: the bridge retries it and, after ``-max-attempts``, dead-letters its
first signal, except a 401 and a 503, which it does not count (the signals
wait until the secrets agree, or the secret is set). Then each signal, in order, is sent to the signals
of :mod:`realtime.signals`, and its receivers' effects become its result.
A receiver that raises (other than :class:`realtime.Reject`) makes that
signal's result ``{"error": ...}`` and the signals after it get no result:
the bridge sends them again.
"""

import io
import json
import logging

from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.wsgi import WSGIRequest
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse, HttpResponseNotAllowed
from django.utils.module_loading import import_string
from django.views.decorators.csrf import csrf_exempt

from . import conf, signals
from .signature import verify
from .sockets import Event, Reject, Socket, answering

logger = logging.getLogger("realtime")

VERSION = 1


@csrf_exempt
def bridge(request):
    """The view mounted by ``realtime.urls``."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    # Read past DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB by default, which a
    # batch of -http-max-batch signals may exceed; request.body would refuse
    # it with 400 on every retry), up to REALTIME_MAX_BODY_BYTES.
    limit = conf.max_body_bytes()
    body = request.read(limit + 1)
    if len(body) > limit:
        logger.error("realtime: a bridge request is over REALTIME_MAX_BODY_BYTES (%d); lower the worker's -http-max-batch", limit)
        return HttpResponse("request body too large\n", status=413, content_type="text/plain")
    try:
        secret = conf.secret()
    except ImproperlyConfigured as e:
        # 503: the bridge takes the app as unavailable and holds the
        # signals back (tried again, never dead-lettered) until it is set.
        logger.error("realtime: %s; bridge requests are answered 503 and their signals wait", e)
        return HttpResponse("%s\n" % e, status=503, content_type="text/plain")
    if not verify(secret, request.headers.get("X-Realtime-Timestamp"),
                  request.headers.get("X-Realtime-Signature"), body, window=conf.replay_window()):
        logger.warning("realtime: refused a bridge request with a bad or stale signature")
        return HttpResponse("bad signature\n", status=401, content_type="text/plain")
    try:
        payload = json.loads(body)
        if not isinstance(payload, dict) or payload.get("v") != VERSION or not isinstance(payload.get("signals"), list):
            raise ValueError("not a version-%d request" % VERSION)
    except ValueError as e:
        return HttpResponse("bad request: %s\n" % e, status=400, content_type="text/plain")
    results = []
    for signal in payload["signals"]:
        try:
            # Encoded here, so a value JSON cannot carry (NaN, an object)
            # fails this signal only.
            results.append(encode(handle(signal)))
        except Exception as e:  # the bridge sends it again
            logger.exception("realtime: %s signal %s failed",
                             signal.get("type") if isinstance(signal, dict) else "bad",
                             signal.get("id") if isinstance(signal, dict) else "?")
            results.append(encode({"error": "%s: %s" % (type(e).__name__, e)}))
            break
    body = '{"v": %d, "results": [%s]}' % (VERSION, ", ".join(results))
    return HttpResponse(body, content_type="application/json")


def encode(result):
    """A result as JSON text: Django's encoder (datetimes, decimals, UUIDs,
    lazy strings as str), no NaN or infinities."""
    return json.dumps(result, cls=DjangoJSONEncoder, allow_nan=False)


def handle(signal):
    """Dispatches one bridge signal (a dict) and returns its result dict."""
    kind = signal.get("type")
    sid, namespace = signal["sid"], signal.get("namespace") or ""
    handshake = signal.get("handshake")
    socket = Socket(sid, namespace, handshake=handshake, auth=signal.get("auth"),
                    transport=signal.get("transport"))
    request = build_request(handshake, signal)
    with answering(sid, namespace) as answer:
        try:
            if kind == "connect":
                signals.socket_connected.send(sender=socket, request=request)
            elif kind == "disconnect":
                signals.socket_disconnected.send(sender=socket, request=request, reason=signal.get("reason"))
            elif kind == "message":
                signals.socket_client_message.send(sender=socket, request=request, message=signal.get("data"), json=False)
            elif kind == "json":
                signals.socket_client_message.send(sender=socket, request=request, message=signal.get("data"), json=True)
            elif kind == "event":
                event = Event(signal.get("name"), signal.get("args"), signal.get("ack_id"), answer)
                signals.socket_client_event.send(sender=socket, request=request, event=event)
                by_type = signals.socket_client_event_by_type.get(event.name)
                if by_type is not None:
                    by_type.send(sender=socket, request=request, event=event)
            elif kind == "ack":
                signals.socket_client_ack.send(sender=socket, request=request, ack_id=signal.get("ack_id"),
                                               args=list(signal.get("args") or []))
            # Other types (a later protocol's) are answered done.
        except Reject as r:
            answer.reject = r.reject_args
    return answer.result()


def build_request(handshake, signal):
    """A Django HttpRequest (a WSGIRequest, GET) made from a signal's
    handshake: its kept headers as ``HTTP_*`` (so ``request.COOKIES``,
    ``request.headers``), its query string (``request.GET``), the client's
    address as ``REMOTE_ADDR`` (port dropped), ``https`` when it was secure;
    then the REALTIME_REQUEST_MIDDLEWARE's ``process_request`` (sessions,
    auth). ``request.realtime_signal`` is the signal dict (its ``id`` is the
    same when the bridge sends it again: an idempotency key)."""
    hs = handshake or {}
    url = hs.get("url") or "/"
    path = url.split("?", 1)[0] or "/"
    addr = hs.get("address") or ""
    host = addr.rsplit(":", 1)[0] if ":" in addr else addr
    host = host.strip("[]")
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": hs.get("query") or "",
        "REMOTE_ADDR": host,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "443" if hs.get("secure") else "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "https" if hs.get("secure") else "http",
        "wsgi.errors": io.StringIO(),
    }
    for name, value in (hs.get("headers") or {}).items():
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value
        else:
            environ["HTTP_" + key] = value
    request = WSGIRequest(environ)
    request.realtime_signal = signal
    for path in conf.request_middleware():
        mw = import_string(path)(lambda r: None)
        mw.process_request(request)
    return request
