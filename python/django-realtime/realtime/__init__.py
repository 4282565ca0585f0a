"""django-realtime's API on the realtime cluster's HTTP bridge.

Add ``'realtime'`` to ``INSTALLED_APPS`` and ``path('realtime/',
include('realtime.urls'))`` to your URLconf, point ``worker -app http
-http-endpoint`` at ``https://yoursite/realtime/``, and write receivers for
the signals of :mod:`realtime.signals` as with django-realtime.

Names exported here:

- :data:`connected_sockets`: every socket of the default namespace, an
  iterable read page by page from the server HTTP API (``REALTIME_API_URL``);
  ``connected_sockets.namespace('/chat')`` and ``.room('lobby')`` narrow it,
  ``len()`` counts (``GET /v1/count``).
- :class:`Socket`, :class:`Session`, :class:`Event`: what receivers get.
- :class:`Reject`: raise it in a receiver to answer bad client input.
- :class:`RealtimeAPIError`: a server HTTP API call failed.
"""

from .api import RealtimeAPIError
from .sockets import ConnectedSockets, Event, Reject, Session, Socket

#: Every socket of the default namespace, through the server HTTP API.
connected_sockets = ConnectedSockets()

__all__ = [
    "ConnectedSockets",
    "Event",
    "RealtimeAPIError",
    "Reject",
    "Session",
    "Socket",
    "connected_sockets",
]
