"""The echo app contract (examples/echo in Go), in both namespaces ("" and
/chat), written with django-realtime's API:

- connect: emits ``welcome`` ``{"sid", "ns"}``;
- a message is sent back, a JSON message sent back as JSON;
- ``echo``: acks with its arguments, or emits ``echo`` with them;
- ``join``/``leave`` a room (acks true; a room that is not a string is
  rejected with ``{"error": …}``); ``to`` room payload: ``relay`` payload to
  the room's other members;
- ``shout`` payload: to every other socket of the namespace;
- ``whoami``: acks the session id; ``count``: acks the namespace's sockets
  (through the server API, REALTIME_API_URL);
- ``ask`` q: emits ``question`` q asking for an ack; the client's answer's
  first argument comes back as ``answer``;
- ``bye``: the server disconnects the socket.

The chat (chat.receivers) serves namespace /chatroom in the same project:
every receiver here leaves that namespace's sockets alone, as the Go
workers of the two apps each serve their own namespaces.
"""

import realtime
from django.dispatch import receiver
from realtime.signals import (
    socket_client_ack,
    socket_client_event_by_type,
    socket_client_message,
    socket_connected,
)


NAMESPACES = ("", "/chat")


def in_echo(fn):
    """Runs a receiver for sockets of the echo app's namespaces only."""
    def only_echo(sender, **kwargs):
        if sender.namespace in NAMESPACES:
            fn(sender, **kwargs)
    only_echo.__name__ = fn.__name__
    return only_echo


def ack(event, *args):
    if event.acknowledgeable():
        event.ack(*args)


def room_of(event):
    room = event.args[0] if event.args else None
    if not isinstance(room, str) or not room:
        raise realtime.Reject({"error": "room must be a non-empty string"})
    return room


@receiver(socket_connected)
@in_echo
def welcome(sender, request, **kwargs):
    sender.emit("welcome", {"sid": sender.session.session_id, "ns": sender.namespace})


@receiver(socket_client_message)
@in_echo
def message(sender, request, message, json=False, **kwargs):
    sender.send(message, json=json)


@receiver(socket_client_event_by_type["echo"])
@in_echo
def echo(sender, request, event, **kwargs):
    if event.acknowledgeable():
        event.ack(*event.args)
    else:
        sender.emit("echo", *event.args)


@receiver(socket_client_event_by_type["join"])
@in_echo
def join(sender, request, event, **kwargs):
    sender.join(room_of(event))
    ack(event, True)


@receiver(socket_client_event_by_type["leave"])
@in_echo
def leave(sender, request, event, **kwargs):
    sender.leave(room_of(event))
    ack(event, True)


@receiver(socket_client_event_by_type["to"])
@in_echo
def to(sender, request, event, **kwargs):
    room = room_of(event)
    if len(event.args) < 2:
        raise realtime.Reject({"error": "to: room and payload"})
    # The payload only: a session id is a bearer token, never sent to others.
    sender.to(room).emit("relay", event.args[1])
    ack(event, True)


@receiver(socket_client_event_by_type["shout"])
@in_echo
def shout(sender, request, event, **kwargs):
    sender.broadcast_emit("shout", event.args[0] if event.args else None)
    ack(event, True)


@receiver(socket_client_event_by_type["whoami"])
@in_echo
def whoami(sender, request, event, **kwargs):
    ack(event, sender.session.session_id)


@receiver(socket_client_event_by_type["count"])
@in_echo
def count(sender, request, event, **kwargs):
    ack(event, realtime.connected_sockets.namespace(sender.namespace).count())


@receiver(socket_client_event_by_type["authdata"])
@in_echo
def authdata(sender, request, event, **kwargs):
    ack(event, sender.auth)


@receiver(socket_client_event_by_type["ask"])
@in_echo
def ask(sender, request, event, **kwargs):
    sender.emit_ack("question", event.args[0] if event.args else None)


@receiver(socket_client_ack)
@in_echo
def answer(sender, request, ack_id, args, **kwargs):
    if args:
        sender.emit("answer", args[0])


@receiver(socket_client_event_by_type["bye"])
@in_echo
def bye(sender, request, event, **kwargs):
    sender.disconnect()
