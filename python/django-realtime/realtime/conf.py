"""Settings of the realtime app, each read from Django's settings first and
then from the environment variable of the same name.

- ``REALTIME_SECRET`` (str, required by the bridge endpoint): the secret the
  bridge signs requests with (the worker's ``-http-secret``).
- ``REALTIME_API_URL`` (str, e.g. ``http://127.0.0.1:8200``): a gateway's
  server HTTP API (its ``-api-addr``); needed only to act outside a
  receiver's answer (``connected_sockets``, or a socket used from a view).
- ``REALTIME_API_KEY`` (str, default none): the API's bearer key (the
  gateway's ``-api-key``).
- ``REALTIME_API_TIMEOUT`` (seconds, default 10): per API request.
- ``REALTIME_REPLAY_WINDOW`` (seconds, default 300): how far a request's
  timestamp may be from this clock, either direction.
- ``REALTIME_MAX_BODY_BYTES`` (bytes, default 64 MiB): the largest bridge
  request read (Django's DATA_UPLOAD_MAX_MEMORY_SIZE does not apply to it).
- ``REALTIME_CLIENT_SCRIPT_URL`` (str, default ``/socket.io/socket.io.js``):
  what ``{% socketio_client_script %}`` loads (a gateway started with
  ``-client-script`` serves it there).
- ``REALTIME_REQUEST_MIDDLEWARE`` (list of dotted paths, default: those of
  ``django.contrib.sessions.middleware.SessionMiddleware`` and
  ``django.contrib.auth.middleware.AuthenticationMiddleware`` that are in
  ``MIDDLEWARE``): the middleware whose ``process_request`` runs on the
  ``request`` receivers get, so ``request.session`` and ``request.user``
  are there.
"""

import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_DEFAULT_MIDDLEWARE = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
)


def get(name, default=None):
    """The setting ``name``: Django's setting, else the environment
    variable, else ``default``."""
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name)
    return default if value is None or value == "" else value


def secret():
    """REALTIME_SECRET as bytes; ImproperlyConfigured when unset."""
    value = get("REALTIME_SECRET")
    if not value:
        raise ImproperlyConfigured(
            "REALTIME_SECRET is not set (the secret of the bridge worker's -http-secret)"
        )
    return value.encode() if isinstance(value, str) else bytes(value)


def api_url():
    """REALTIME_API_URL without a trailing slash; ImproperlyConfigured when unset."""
    value = get("REALTIME_API_URL")
    if not value:
        raise ImproperlyConfigured(
            "REALTIME_API_URL is not set (a gateway's -api-addr, e.g. http://127.0.0.1:8200)"
        )
    return value.rstrip("/")


def api_key():
    """REALTIME_API_KEY, or None."""
    return get("REALTIME_API_KEY")


def api_timeout():
    """REALTIME_API_TIMEOUT in seconds (float, default 10)."""
    return float(get("REALTIME_API_TIMEOUT", 10))


def replay_window():
    """REALTIME_REPLAY_WINDOW in seconds (int, default 300)."""
    return int(get("REALTIME_REPLAY_WINDOW", 300))


def max_body_bytes():
    """REALTIME_MAX_BODY_BYTES (int, default 64 MiB)."""
    return int(get("REALTIME_MAX_BODY_BYTES", 64 << 20))


def client_script_url():
    """REALTIME_CLIENT_SCRIPT_URL (default /socket.io/socket.io.js)."""
    return get("REALTIME_CLIENT_SCRIPT_URL", "/socket.io/socket.io.js")


def request_middleware():
    """The dotted paths of the middleware run on a signal's request."""
    value = getattr(settings, "REALTIME_REQUEST_MIDDLEWARE", None)
    if value is not None:
        return list(value)
    configured = list(getattr(settings, "MIDDLEWARE", None) or ())
    return [m for m in configured if m in _DEFAULT_MIDDLEWARE]
