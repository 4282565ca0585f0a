"""The bridge's request signature (docs/bridge.md, "Signature and replay
window"): ``X-Realtime-Timestamp`` is unix seconds, ``X-Realtime-Signature``
is ``v1=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>``, possibly
several comma-separated."""

import hashlib
import hmac
import time

HEADER_TIMESTAMP = "X-Realtime-Timestamp"
HEADER_SIGNATURE = "X-Realtime-Signature"


def sign(secret, body, timestamp=None):
    """The (timestamp, signature) header values for ``body`` (bytes) signed
    with ``secret`` (bytes) at ``timestamp`` (unix seconds, default now)."""
    ts = str(int(time.time() if timestamp is None else timestamp))
    mac = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return ts, "v1=" + mac


def verify(secret, timestamp, signature, body, window=300, now=None):
    """Whether ``signature`` signs ``body`` at ``timestamp`` with ``secret``.

    ``timestamp`` and ``signature`` are the header values (str, may be
    None); ``body`` the raw request body (bytes); ``window`` the replay
    window in seconds, either direction of ``now`` (unix seconds, default
    the clock). The HMACs are compared in constant time.
    """
    if not timestamp or not signature:
        return False
    if not timestamp.isdigit() or not timestamp.isascii():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > window:
        return False
    want = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    ok = False
    for value in signature.split(","):
        value = value.strip()
        if value.startswith("v1=") and hmac.compare_digest(value[3:].encode(), want.encode()):
            ok = True
    return ok
