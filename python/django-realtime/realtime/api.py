"""A client of the gateways' server HTTP API (docs/api.yaml), stdlib only.

Every call raises :class:`RealtimeAPIError` when the API answers an error
(``status`` is the HTTP status, ``reason`` the API's ``error`` field, e.g.
``unknown_socket``) or cannot be reached (``status`` 0, ``reason``
``unreachable``); ``django.core.exceptions.ImproperlyConfigured`` when
REALTIME_API_URL is unset.
"""

import json
import urllib.error
import urllib.parse
import urllib.request

from . import conf


class RealtimeAPIError(Exception):
    """A server HTTP API call failed: ``status`` (int, 0 when unreachable),
    ``reason`` (str), ``message`` (str)."""

    def __init__(self, status, reason, message):
        super().__init__("realtime API: %s %s: %s" % (status, reason, message))
        self.status, self.reason, self.message = status, reason, message


def call(method, path, body=None, query=None):
    """``method`` ``path`` (e.g. ``/v1/emit``) with ``body`` (a dict, sent as
    JSON) or ``query`` (a dict, None values left out); the decoded JSON
    answer."""
    url = conf.api_url() + path
    if query:
        q = {k: v for k, v in query.items() if v is not None}
        if q:
            url += "?" + urllib.parse.urlencode(q)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    key = conf.api_key()
    if key:
        req.add_header("Authorization", "Bearer " + key)
    try:
        with urllib.request.urlopen(req, timeout=conf.api_timeout()) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            err = json.loads(raw)
            raise RealtimeAPIError(e.code, err.get("error", ""), err.get("message", "")) from None
        except (ValueError, AttributeError):
            raise RealtimeAPIError(e.code, "", raw.decode("utf-8", "replace")) from None
    except (urllib.error.URLError, OSError) as e:
        raise RealtimeAPIError(0, "unreachable", str(e)) from None


def target(namespace="", socket=None, room=None, except_=None):
    """The target fields of an API request (docs/api.yaml ``Target``)."""
    t = {"namespace": namespace or ""}
    if socket is not None:
        t["socket"] = socket
    if room is not None:
        t["room"] = room
    if except_ is not None:
        t["except"] = except_
    return t


def emit(name, args=(), **tgt):
    """POST /v1/emit: event ``name`` with ``args`` (list) to ``target(**tgt)``."""
    call("POST", "/v1/emit", dict(target(**tgt), event=name, args=list(args)))


def send(message, **tgt):
    """POST /v1/send: a message (str)."""
    call("POST", "/v1/send", dict(target(**tgt), message=message))


def send_json(data, **tgt):
    """POST /v1/json: a JSON message (any JSON value)."""
    call("POST", "/v1/json", dict(target(**tgt), data=data))


def join(socket, room, namespace=""):
    """POST /v1/join."""
    call("POST", "/v1/join", {"namespace": namespace or "", "socket": socket, "room": room})


def leave(socket, room, namespace=""):
    """POST /v1/leave."""
    call("POST", "/v1/leave", {"namespace": namespace or "", "socket": socket, "room": room})


def disconnect(socket, namespace=""):
    """POST /v1/disconnect."""
    call("POST", "/v1/disconnect", {"namespace": namespace or "", "socket": socket})


def count(namespace="", room=None):
    """GET /v1/count: the sockets (int) of a namespace or room, cluster-wide."""
    return int(call("GET", "/v1/count", query={"namespace": namespace or "", "room": room})["count"])


def socket_ids(namespace="", room=None, limit=100):
    """GET /v1/sockets page by page: yields socket ids (str); one may come
    twice if sockets come and go meanwhile."""
    cursor = None
    while True:
        page = call("GET", "/v1/sockets", query={"namespace": namespace or "", "room": room,
                                                 "cursor": cursor, "limit": limit})
        for sid in page["sockets"]:
            yield sid
        cursor = page.get("cursor") or ""
        if not cursor:
            return


def rooms(socket, namespace=""):
    """GET /v1/rooms?socket=: the rooms (list of str) of a socket."""
    return list(call("GET", "/v1/rooms", query={"namespace": namespace or "", "socket": socket})["rooms"])
