"""django-realtime's signals, sent by the bridge endpoint for each signal of
a bridge request, in order.

Every receiver gets ``sender``: the :class:`realtime.Socket` the signal is
about, and ``request``: a Django ``HttpRequest`` made from the socket's
handshake (its kept headers, cookies, query string and client address; with
``request.session`` and ``request.user`` when the session and auth
middleware are installed). Whatever a receiver does with sockets
(``send``, ``emit``, ``join``, ``ack``, …) is collected and becomes the
bridge's answer for that signal, committed with it exactly once.

A receiver that raises makes the signal fail: the bridge sends it again
(after ``-retry-backoff``) and dead-letters it after ``-max-attempts``; raise
:class:`realtime.Reject` instead for bad client input (no retry).

- ``socket_connected(sender, request)``: a socket connected to a namespace.
- ``socket_disconnected(sender, request, reason)``: it left (reason
  ``client``, ``timeout``, ``server``, …). ``request`` is built from an
  empty handshake when the session was gone already.
- ``socket_client_message(sender, request, message, json)``: ``message``
  is a str (``json`` False) or, for a JSON message, any JSON value
  (``json`` True).
- ``socket_client_event(sender, request, event)``: any event
  (:class:`realtime.Event`).
- ``socket_client_event_by_type[name](sender, request, event)``: the events
  named ``name`` (a Signal made on first use).
- ``socket_client_ack(sender, request, ack_id, args)`` (not in
  django-realtime): the client answered ``socket.emit_ack``.
"""

from django.dispatch import Signal

socket_connected = Signal()
socket_disconnected = Signal()
socket_client_message = Signal()
socket_client_event = Signal()
socket_client_ack = Signal()


class _SignalsByType(dict):
    """A dict of event name → Signal that makes the Signal on first use."""

    def __missing__(self, name):
        signal = self[name] = Signal()
        return signal


socket_client_event_by_type = _SignalsByType()
