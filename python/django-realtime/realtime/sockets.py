"""Sockets, their session, events, and the answer a receiver builds.

Inside a receiver of :mod:`realtime.signals` (while the bridge endpoint
handles a signal), what is done with any :class:`Socket` becomes an effect of
the answer to that signal, committed by the bridge together with the
signal, exactly once (docs/bridge.md, "Answers"). Anywhere else (a view, a
management command, a Celery task), the same methods call the gateways'
server HTTP API at once (REALTIME_API_URL, docs/api.yaml) and raise
:class:`realtime.RealtimeAPIError` when it fails.
"""

import secrets
import threading

from . import api

#: The largest ack id a client accepts (2^53 - 1, JavaScript's safe integers).
MAX_ACK_ID = (1 << 53) - 1

_local = threading.local()


class Reject(Exception):
    """Raise in a receiver for invalid client input: the effects made so far
    are committed, the signal is not retried (counted ``rejected``), and an
    event whose client asked for an ack, if no ``ack`` answered it, gets
    ``args`` as its callback's arguments, e.g.
    ``raise Reject({'error': 'room must be a string'})``."""

    def __init__(self, *args):
        super().__init__(*args)
        self.reject_args = list(args)


class Answer:
    """The result being built for one bridge signal: ``effects`` (list of
    effect dicts, docs/bridge.md), ``reject`` (None or a list of args)."""

    def __init__(self, sid, namespace):
        self.sid, self.namespace = sid, namespace
        self.effects = []
        self.reject = None
        self.acked = False

    def result(self):
        """The bridge result dict for this signal."""
        res = {"effects": self.effects}
        if self.reject is not None:
            res["reject"] = self.reject
        return res


def current_answer():
    """The :class:`Answer` being built in this thread, or None outside a
    receiver."""
    return getattr(_local, "answer", None)


class answering:
    """``with answering(sid, namespace) as answer:`` makes effects go to
    ``answer`` (used by the bridge endpoint; nests)."""

    def __init__(self, sid, namespace):
        self.answer = Answer(sid, namespace)

    def __enter__(self):
        self.prev = current_answer()
        _local.answer = self.answer
        return self.answer

    def __exit__(self, *exc):
        _local.answer = self.prev
        return False


class Session:
    """A socket's Socket.IO session: ``session_id`` (str) is the client's
    ``socket.socket.sessionid``, the same in every namespace it joins."""

    def __init__(self, session_id):
        self.session_id = session_id

    def __repr__(self):
        return "Session(%r)" % self.session_id


class Socket:
    """One client's connection to one namespace.

    ``session.session_id`` (str) and ``namespace`` (``""`` for the default
    one, else e.g. ``"/chat"``) identify it; ``handshake`` (dict, see
    docs/bridge.md, ``{}`` when unknown), ``auth`` (what the gateway's
    authorize hook kept, or None), ``transport`` (on connect, e.g.
    ``websocket``) describe it.
    """

    def __init__(self, session_id, namespace="", handshake=None, auth=None, transport=None):
        self.session = Session(session_id)
        self.namespace = namespace or ""
        self.handshake = handshake or {}
        self.auth = auth
        self.transport = transport

    @property
    def id(self):
        """The session id (str)."""
        return self.session.session_id

    def __eq__(self, other):
        return isinstance(other, Socket) and (self.id, self.namespace) == (other.id, other.namespace)

    def __hash__(self):
        return hash((self.id, self.namespace))

    def __repr__(self):
        return "Socket(%r, %r)" % (self.id, self.namespace)

    # The effects: to the answer inside a receiver, else through the API.

    def _target(self, answer, op, fields):
        """Adds sid/namespace to an effect when it is not about the signal's
        own socket (a room or broadcast target of emit/send/json has no sid:
        its ``except`` names the socket)."""
        if self.namespace != answer.namespace:
            fields["namespace"] = self.namespace
        to_many = op in ("emit", "send", "json") and (fields.get("broadcast") or "room" in fields)
        if self.id != answer.sid and not to_many:
            fields["sid"] = self.id
        return fields

    def _effect(self, op, **fields):
        answer = current_answer()
        if answer is None:
            return False
        fields = self._target(answer, op, fields)
        answer.effects.append(dict(op=op, **fields))
        return True

    def send(self, message, json=False):
        """Sends ``message`` (a str; with ``json=True`` any JSON value, as a
        JSON message) to this socket."""
        if json:
            return self.send_json(message)
        if not isinstance(message, str):
            raise TypeError("send: a message is a str (use json=True or send_json for other values)")
        if not self._effect("send", data=message):
            api.send(message, namespace=self.namespace, socket=self.id)

    def send_json(self, data):
        """Sends ``data`` (any JSON value) as a JSON message to this socket."""
        if not self._effect("json", data=data):
            api.send_json(data, namespace=self.namespace, socket=self.id)

    def emit(self, name, *args):
        """Emits event ``name`` with ``args`` (JSON values) to this socket."""
        if not self._effect("emit", name=name, args=list(args)):
            api.emit(name, args, namespace=self.namespace, socket=self.id)

    def emit_ack(self, name, *args):
        """Emits ``name`` asking the client for an ack; returns the ack id
        (int, 1 … 2^53−1). The client's answer arrives as the
        ``socket_client_ack`` signal with that ``ack_id``; no answer produces
        nothing (keep your own deadline). Only inside a receiver
        (RuntimeError elsewhere: the server API has no acks)."""
        ack_id = secrets.randbelow(MAX_ACK_ID) + 1
        if not self._effect("emit_ack", name=name, args=list(args), ack_id=ack_id):
            raise RuntimeError("emit_ack works only inside a realtime signal receiver")
        return ack_id

    def broadcast_send(self, message, json=False):
        """Sends a message to every other socket of the namespace."""
        if json:
            return self.broadcast_send_json(message)
        if not self._effect("send", data=message, broadcast=True, **{"except": self.id}):
            api.send(message, namespace=self.namespace, except_=self.id)

    def broadcast_send_json(self, data):
        """Sends a JSON message to every other socket of the namespace."""
        if not self._effect("json", data=data, broadcast=True, **{"except": self.id}):
            api.send_json(data, namespace=self.namespace, except_=self.id)

    def broadcast_emit(self, name, *args):
        """Emits ``name`` to every other socket of the namespace."""
        if not self._effect("emit", name=name, args=list(args), broadcast=True, **{"except": self.id}):
            api.emit(name, args, namespace=self.namespace, except_=self.id)

    def to(self, room):
        """The other members of ``room`` (a non-empty str) of this socket's
        namespace: ``socket.to('lobby').emit('said', text)``."""
        return Room(self, room)

    def join(self, room):
        """Puts this socket in ``room`` (a non-empty str) of its namespace."""
        _check_room(room)
        if not self._effect("join", room=room):
            api.join(self.id, room, namespace=self.namespace)

    def leave(self, room):
        """Takes this socket out of ``room``."""
        _check_room(room)
        if not self._effect("leave", room=room):
            api.leave(self.id, room, namespace=self.namespace)

    def disconnect(self):
        """Disconnects this socket: in the default namespace the whole
        session ends (the client gets ``0::``), else only this namespace."""
        if not self._effect("disconnect"):
            api.disconnect(self.id, namespace=self.namespace)

    def rooms(self):
        """The rooms (list of str) this socket is in, through the API (so
        not counting joins of the answer being built)."""
        return api.rooms(self.id, namespace=self.namespace)


def _check_room(room):
    if not isinstance(room, str) or not room:
        raise ValueError("a room is a non-empty str, not %r" % (room,))


class Room:
    """The members of a room of a socket's namespace but that socket."""

    def __init__(self, socket, room):
        _check_room(room)
        self.socket, self.room = socket, room

    def _fields(self):
        return {"room": self.room, "except": self.socket.id}

    def emit(self, name, *args):
        """Emits ``name`` with ``args`` to the room's other members."""
        if not self.socket._effect("emit", name=name, args=list(args), **self._fields()):
            api.emit(name, args, namespace=self.socket.namespace, room=self.room, except_=self.socket.id)

    def send(self, message, json=False):
        """Sends a message (or, with ``json=True``, a JSON message)."""
        op, key = ("json", "data") if json else ("send", "data")
        if not self.socket._effect(op, **{key: message}, **self._fields()):
            fn = api.send_json if json else api.send
            fn(message, namespace=self.socket.namespace, room=self.room, except_=self.socket.id)


class Event:
    """A client's event: ``name`` (str), ``args`` (list of JSON values; also
    ``data``, django-realtime's name), ``ack_id`` (int or None).

    ``ack(*params)`` answers the client's callback with ``params`` (JSON
    values): a second ``ack`` raises RuntimeError; an event whose client
    asked for no ack ignores it (returns False). ``reject(*args)`` answers
    bad input as :class:`Reject` does, without ending the receiver.
    """

    def __init__(self, name, args=None, ack_id=None, answer=None):
        self.name = name
        self.args = list(args or [])
        self.ack_id = ack_id
        self._answer = answer
        self._acked = False

    @property
    def data(self):
        """The event's arguments (list), as django-realtime named them."""
        return self.args

    def acknowledgeable(self):
        """Whether the client asked for an ack (passed a callback)."""
        return self.ack_id is not None

    def acknowledged(self):
        """Whether ``ack`` was called."""
        return self._acked

    def ack(self, *params):
        """Answers the client's callback with ``params``; returns whether an
        ack was sent (False when the client asked for none)."""
        if self._acked:
            raise RuntimeError("event %r was acknowledged already" % self.name)
        if not self.acknowledgeable():
            return False
        answer = self._answer or current_answer()
        if answer is None:
            raise RuntimeError("ack works only inside a realtime signal receiver")
        self._acked = True
        answer.effects.append({"op": "ack", "args": list(params)})
        return True

    def reject(self, *args):
        """Marks the event as invalid input (see :class:`Reject`)."""
        answer = self._answer or current_answer()
        if answer is None:
            raise RuntimeError("reject works only inside a realtime signal receiver")
        answer.reject = list(args)

    def __repr__(self):
        return "Event(%r, %r, ack_id=%r)" % (self.name, self.args, self.ack_id)


class ConnectedSockets:
    """The connected sockets of a namespace (default ``""``) or of a room of
    it, read through the server HTTP API a page at a time: iterate it for
    :class:`Socket` objects (without handshake), ``count()`` for their
    number. ``namespace(ns)`` and ``room(name)`` narrow it."""

    def __init__(self, namespace="", room=None):
        self._namespace, self._room = namespace, room

    def namespace(self, namespace):
        """The sockets of ``namespace`` (``""`` or ``"/name"``)."""
        return ConnectedSockets(namespace, None)

    def room(self, room):
        """The sockets of ``room`` of this namespace."""
        return ConnectedSockets(self._namespace, room)

    def __iter__(self):
        for sid in api.socket_ids(namespace=self._namespace, room=self._room):
            yield Socket(sid, self._namespace)

    def count(self):
        """The number of sockets (int), cluster-wide (GET /v1/count)."""
        return api.count(namespace=self._namespace, room=self._room)

    def __len__(self):
        """``count()``: django-realtime's connected_sockets was a list."""
        return self.count()

    def __bool__(self):
        """Whether any socket is connected (``count()``), as for a list."""
        return self.count() > 0

    def __repr__(self):
        return "ConnectedSockets(%r, room=%r)" % (self._namespace, self._room)
