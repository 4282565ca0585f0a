"""The bridge endpoint: signatures, dispatch, effects, acks, rejects,
requests made from handshakes, and the server API client (against a real
loopback HTTP server)."""

import http.server
import os
import json
import threading
import time
from unittest import mock

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.backends.signed_cookies import SessionStore
from django.template import Context, Template
from django.test import TestCase, override_settings

import realtime
from realtime import signals
from realtime.signature import sign, verify

SECRET = b"unit-test-secret"
SID = "Sa1b2c3d4e5f6a7b8c9d0"
HANDSHAKE = {
    "headers": {"cookie": "theme=dark", "user-agent": "node-XMLHttpRequest", "x-forwarded-for": "10.1.1.1"},
    "query": "t=1764499999999&user=ann",
    "address": "127.0.0.1:53122",
    "time": 1764499999999,
    "xdomain": False,
    "secure": False,
    "url": "/socket.io/1/?t=1764499999999&user=ann",
}


def sig(kind, n=1, **fields):
    s = {"id": "1764500000000-%d" % n, "attempt": 1, "type": kind, "sid": SID, "namespace": "",
         "time": 1764500000000, "handshake": HANDSHAKE}
    s.update(fields)
    return s


class BridgeCase(TestCase):
    """Posts signed requests to /realtime/ and connects receivers for one test."""

    def setUp(self):
        self.receivers = []

    def tearDown(self):
        for signal, fn in self.receivers:
            signal.disconnect(fn)

    def on(self, signal, fn):
        signal.connect(fn, weak=False)
        self.receivers.append((signal, fn))

    def post(self, body, secret=SECRET, timestamp=None, signature=None):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        ts, sg = sign(secret, raw, timestamp)
        return self.client.post("/realtime/", raw, content_type="application/json",
                                HTTP_X_REALTIME_TIMESTAMP=ts, HTTP_X_REALTIME_SIGNATURE=signature or sg)

    def results(self, *signals_):
        resp = self.post({"v": 1, "signals": list(signals_)})
        self.assertEqual(resp.status_code, 200, resp.content)
        self.assertEqual(resp["Content-Type"], "application/json")
        answer = json.loads(resp.content)
        self.assertEqual(answer["v"], 1)
        return answer["results"]


class SignatureTests(BridgeCase):
    def test_good_signature(self):
        self.assertEqual(self.post({"v": 1, "signals": [sig("connect")]}).status_code, 200)

    def test_wrong_secret(self):
        seen = []
        self.on(signals.socket_connected, lambda sender, **kw: seen.append(sender))
        self.assertEqual(self.post({"v": 1, "signals": [sig("connect")]}, secret=b"other").status_code, 401)
        self.assertEqual(seen, [], "a receiver ran for an unsigned request")

    @override_settings(REALTIME_SECRET="")
    def test_secret_unset(self):
        # 503, which the bridge does not count: the signals wait until the
        # secret is set, rather than being dead-lettered.
        seen = []
        self.on(signals.socket_connected, lambda sender, **kw: seen.append(sender))
        with mock.patch.dict(os.environ, {"REALTIME_SECRET": ""}), self.assertLogs("realtime", "ERROR") as logs:
            resp = self.post({"v": 1, "signals": [sig("connect")]})
        self.assertEqual(resp.status_code, 503)
        self.assertIn(b"REALTIME_SECRET is not set", resp.content)
        self.assertIn("REALTIME_SECRET is not set", logs.output[0])
        self.assertEqual(seen, [])

    def test_body_changed(self):
        raw = json.dumps({"v": 1, "signals": [sig("connect")]}).encode()
        ts, sg = sign(SECRET, raw)
        resp = self.client.post("/realtime/", raw + b" ", content_type="application/json",
                                HTTP_X_REALTIME_TIMESTAMP=ts, HTTP_X_REALTIME_SIGNATURE=sg)
        self.assertEqual(resp.status_code, 401)

    def test_stale_and_future_timestamps(self):
        body = {"v": 1, "signals": [sig("connect")]}
        self.assertEqual(self.post(body, timestamp=time.time() - 301).status_code, 401)
        self.assertEqual(self.post(body, timestamp=time.time() + 301).status_code, 401)
        self.assertEqual(self.post(body, timestamp=time.time() - 290).status_code, 200)

    @override_settings(REALTIME_REPLAY_WINDOW=10)
    def test_replay_window_setting(self):
        self.assertEqual(self.post({"v": 1, "signals": [sig("connect")]}, timestamp=time.time() - 20).status_code, 401)

    def test_missing_headers(self):
        resp = self.client.post("/realtime/", b'{"v":1,"signals":[]}', content_type="application/json")
        self.assertEqual(resp.status_code, 401)

    def test_several_signatures_one_good(self):
        raw = json.dumps({"v": 1, "signals": [sig("connect")]}).encode()
        ts, good = sign(SECRET, raw)
        _, bad = sign(b"old", raw, int(ts))
        resp = self.client.post("/realtime/", raw, content_type="application/json",
                                HTTP_X_REALTIME_TIMESTAMP=ts, HTTP_X_REALTIME_SIGNATURE=bad + ", " + good)
        self.assertEqual(resp.status_code, 200)

    def test_verify_rejects_malformed(self):
        raw = b"{}"
        ts, good = sign(SECRET, raw)
        self.assertTrue(verify(SECRET, ts, good, raw))
        for t, s in [("", good), (ts, ""), ("-1", good), ("1e9", good), (ts, good[3:]), (ts, "v2=" + good[3:]), ("١٢", good)]:
            self.assertFalse(verify(SECRET, t, s, raw), (t, s))

    @override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100)
    def test_large_batch_past_django_upload_limit(self):
        results = self.results(*[sig("message", i, data="x" * 100) for i in range(10)])
        self.assertEqual(len(results), 10)

    @override_settings(REALTIME_MAX_BODY_BYTES=1000)
    def test_body_over_the_limit(self):
        self.assertEqual(self.post({"v": 1, "signals": [sig("message", data="x" * 1000)]}).status_code, 413)

    def test_method_and_body(self):
        self.assertEqual(self.client.get("/realtime/").status_code, 405)
        self.assertEqual(self.post(b"not json").status_code, 400)
        self.assertEqual(self.post({"v": 2, "signals": []}).status_code, 400)
        self.assertEqual(self.post([1]).status_code, 400)


class DispatchTests(BridgeCase):
    def test_each_signal_kind(self):
        got = []
        self.on(signals.socket_connected, lambda sender, request, **kw: got.append(("connect", sender, sender.transport)))
        self.on(signals.socket_disconnected, lambda sender, request, reason, **kw: got.append(("disconnect", sender, reason)))
        self.on(signals.socket_client_message,
                lambda sender, request, message, **kw: got.append(("message", sender, message, kw["json"])))
        self.on(signals.socket_client_event,
                lambda sender, request, event, **kw: got.append(("event", sender, event.name, event.data)))
        self.on(signals.socket_client_event_by_type["hello"],
                lambda sender, request, event, **kw: got.append(("hello", sender, event.args)))
        self.on(signals.socket_client_ack,
                lambda sender, request, ack_id, args, **kw: got.append(("ack", sender, ack_id, args)))
        results = self.results(
            sig("connect", 1, transport="websocket"),
            sig("message", 2, data="hi"),
            sig("json", 3, data={"k": [1, None]}, namespace="/chat"),
            sig("event", 4, name="hello", args=["a", 1]),
            sig("event", 5, name="other", args=[]),
            sig("ack", 6, ack_id=42, args=["yes", 2]),
            sig("disconnect", 7, reason="client", handshake=None),
            sig("future-type", 8),
        )
        self.assertEqual(results, [{"effects": []}] * 8)
        s, chat = realtime.Socket(SID, ""), realtime.Socket(SID, "/chat")
        self.assertEqual(got, [
            ("connect", s, "websocket"),
            ("message", s, "hi", False),
            ("message", chat, {"k": [1, None]}, True),
            ("event", s, "hello", ["a", 1]),
            ("hello", s, ["a", 1]),
            ("event", s, "other", []),
            ("ack", s, 42, ["yes", 2]),
            ("disconnect", s, "client"),
        ])
        self.assertEqual(s.session.session_id, SID)

    def test_request_from_handshake(self):
        seen = {}

        def receiver(sender, request, **kw):
            seen.update(cookies=dict(request.COOKIES), ua=request.headers["User-Agent"], user=request.GET["user"],
                        addr=request.META["REMOTE_ADDR"], path=request.path, id=request.realtime_signal["id"],
                        anonymous=request.user.is_anonymous, handshake=sender.handshake)
        self.on(signals.socket_connected, receiver)
        self.results(sig("connect"))
        self.assertEqual(seen, {"cookies": {"theme": "dark"}, "ua": "node-XMLHttpRequest", "user": "ann",
                                "addr": "127.0.0.1", "path": "/socket.io/1/", "id": "1764500000000-1",
                                "anonymous": True, "handshake": HANDSHAKE})

    def test_request_identifies_the_user(self):
        user = User.objects.create_user("ann", password="pw")
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.save()
        hs = dict(HANDSHAKE, headers={"cookie": "sessionid=%s" % session.session_key}, address="[::1]:4000")
        seen = []
        self.on(signals.socket_client_event,
                lambda sender, request, event, **kw: seen.append((request.user.username, request.META["REMOTE_ADDR"])))
        self.results(sig("event", name="x", args=[], handshake=hs))
        self.assertEqual(seen, [("ann", "::1")])

    def test_error_stops_the_batch(self):
        def receiver(sender, request, event, **kw):
            if event.name == "boom":
                sender.emit("lost")
                raise ValueError("database down")
            sender.emit("ok")
        self.on(signals.socket_client_event, receiver)
        results = self.results(sig("event", 1, name="a", args=[]), sig("event", 2, name="boom", args=[]),
                               sig("event", 3, name="c", args=[]))
        self.assertEqual(len(results), 2)
        self.assertEqual(results[0], {"effects": [{"op": "emit", "name": "ok", "args": []}]})
        self.assertEqual(set(results[1]), {"error"})
        self.assertIn("database down", results[1]["error"])


class EffectCase(BridgeCase):
    def effects_of(self, receiver, signal=None):
        self.on(signals.socket_client_event, receiver)
        return self.results(signal or sig("event", name="x", args=[], ack_id=7))[0]


class EffectTests(EffectCase):

    def test_each_effect(self):
        other = realtime.Socket("Sother", "")
        in_chat = realtime.Socket(SID, "/chat")

        def receiver(sender, request, event, **kw):
            sender.send("text")
            sender.send({"j": 1}, json=True)
            sender.send_json([1])
            sender.emit("e", 1, "two")
            sender.broadcast_emit("b", 3)
            sender.broadcast_send("m")
            sender.broadcast_send({"m": 1}, json=True)
            sender.to("lobby").emit("relay", "hi")
            sender.to("lobby").send("hey")
            sender.join("lobby")
            sender.leave("lobby")
            other.emit("for-other")
            other.join("r")
            in_chat.broadcast_emit("chat-all")
            sender.disconnect()
        res = self.effects_of(receiver)
        self.assertEqual(res, {"effects": [
            {"op": "send", "data": "text"},
            {"op": "json", "data": {"j": 1}},
            {"op": "json", "data": [1]},
            {"op": "emit", "name": "e", "args": [1, "two"]},
            {"op": "emit", "name": "b", "args": [3], "broadcast": True, "except": SID},
            {"op": "send", "data": "m", "broadcast": True, "except": SID},
            {"op": "json", "data": {"m": 1}, "broadcast": True, "except": SID},
            {"op": "emit", "name": "relay", "args": ["hi"], "room": "lobby", "except": SID},
            {"op": "send", "data": "hey", "room": "lobby", "except": SID},
            {"op": "join", "room": "lobby"},
            {"op": "leave", "room": "lobby"},
            {"op": "emit", "name": "for-other", "args": [], "sid": "Sother"},
            {"op": "join", "room": "r", "sid": "Sother"},
            {"op": "emit", "name": "chat-all", "args": [], "broadcast": True, "except": SID, "namespace": "/chat"},
            {"op": "disconnect"},
        ]})

    def test_emit_ack(self):
        ids = []
        res = self.effects_of(lambda sender, event, **kw: ids.append(sender.emit_ack("question", "q?")))
        self.assertEqual(len(ids), 1)
        self.assertTrue(1 <= ids[0] <= 2 ** 53 - 1)
        self.assertEqual(res, {"effects": [{"op": "emit_ack", "name": "question", "args": ["q?"], "ack_id": ids[0]}]})

    def test_bad_room_fails_the_signal(self):
        res = self.effects_of(lambda sender, event, **kw: sender.join(""))
        self.assertIn("room", res["error"])

    def test_send_needs_a_string(self):
        res = self.effects_of(lambda sender, event, **kw: sender.send(42))
        self.assertIn("TypeError", res["error"])


class AckTests(EffectCase):
    def test_ack(self):
        seen = []

        def receiver(sender, event, **kw):
            seen.append((event.acknowledgeable(), event.acknowledged()))
            self.assertTrue(event.ack(*event.args, "more"))
            seen.append(event.acknowledged())
        res = self.effects_of(receiver, sig("event", name="echo", args=["x", {"o": [1]}], ack_id=3))
        self.assertEqual(res, {"effects": [{"op": "ack", "args": ["x", {"o": [1]}, "more"]}]})
        self.assertEqual(seen, [(True, False), True])

    def test_ack_without_args(self):
        self.assertEqual(self.effects_of(lambda event, **kw: event.ack()), {"effects": [{"op": "ack", "args": []}]})

    def test_no_ack_asked(self):
        seen = []

        def receiver(event, **kw):
            seen.append((event.acknowledgeable(), event.ack(1), event.acknowledged()))
        res = self.effects_of(receiver, sig("event", name="x", args=[]))
        self.assertEqual(res, {"effects": []})
        self.assertEqual(seen, [(False, False, False)])

    def test_second_ack_fails(self):
        def receiver(event, **kw):
            event.ack(1)
            event.ack(2)
        res = self.effects_of(receiver)
        self.assertIn("acknowledged already", res["error"])

    def test_ack_outside_a_receiver(self):
        with self.assertRaises(RuntimeError):
            realtime.Event("x", [], 1).ack()


class RejectTests(EffectCase):
    def test_reject_exception_keeps_effects(self):
        def receiver(sender, event, **kw):
            sender.emit("before")
            raise realtime.Reject({"error": "room must be a string"})
        res = self.effects_of(receiver, sig("event", name="join", args=[42], ack_id=3, namespace="/chat"))
        self.assertEqual(res, {"effects": [{"op": "emit", "name": "before", "args": []}],
                               "reject": [{"error": "room must be a string"}]})

    def test_event_reject(self):
        res = self.effects_of(lambda event, **kw: event.reject("bad", 1))
        self.assertEqual(res, {"effects": [], "reject": ["bad", 1]})

    def test_reject_then_next_signal(self):
        def receiver(sender, event, **kw):
            if event.name == "bad":
                raise realtime.Reject()
            sender.emit("fine")
        self.on(signals.socket_client_event, receiver)
        results = self.results(sig("event", 1, name="bad", args=[]), sig("event", 2, name="good", args=[]))
        self.assertEqual(results, [{"effects": [], "reject": []},
                                   {"effects": [{"op": "emit", "name": "fine", "args": []}]}])


class FakeAPI(http.server.BaseHTTPRequestHandler):
    """A loopback stand-in for a gateway's server API: records requests,
    pages /v1/sockets by two."""

    calls = []
    sockets = ["s1", "s2", "s3"]

    def log_message(self, *a):
        pass

    def answer(self, status, obj):
        raw = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self):
        self.calls.append(("GET", self.path, self.headers.get("Authorization"), None))
        if self.headers.get("Authorization") != "Bearer k3y":
            return self.answer(401, {"error": "unauthorized", "message": "no"})
        if self.path.startswith("/v1/sockets"):
            start = int(self.path.split("cursor=")[1].split("&")[0]) if "cursor=" in self.path else 0
            nxt = start + 2 if start + 2 < len(self.sockets) else 0
            return self.answer(200, {"sockets": self.sockets[start:start + 2], "cursor": str(nxt) if nxt else ""})
        if self.path.startswith("/v1/count"):
            return self.answer(200, {"count": len(self.sockets)})
        self.answer(404, {"error": "not_found", "message": "no such endpoint"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.calls.append(("POST", self.path, self.headers.get("Authorization"), body))
        if body.get("socket") == "gone":
            return self.answer(404, {"error": "unknown_socket", "message": "not connected"})
        self.answer(200, {"ok": True})


class APITests(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeAPI)
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        cls.url = "http://127.0.0.1:%d/" % cls.server.server_address[1]

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()
        super().tearDownClass()

    def setUp(self):
        FakeAPI.calls.clear()

    def test_connected_sockets(self):
        with self.settings(REALTIME_API_URL=self.url, REALTIME_API_KEY="k3y"):
            socks = list(realtime.connected_sockets.namespace("/chat"))
            self.assertEqual(socks, [realtime.Socket(s, "/chat") for s in ("s1", "s2", "s3")])
            self.assertEqual(realtime.connected_sockets.room("lobby").count(), 3)
            # As for django-realtime's list: len() and truth count.
            self.assertEqual(len(realtime.connected_sockets.room("lobby")), 3)
            self.assertTrue(realtime.connected_sockets.room("lobby"))
        self.assertEqual([c[1] for c in FakeAPI.calls], [
            "/v1/count?namespace=%2Fchat",  # list() asks len() first, for its length hint
            "/v1/sockets?namespace=%2Fchat&limit=100",
            "/v1/sockets?namespace=%2Fchat&cursor=2&limit=100",
            "/v1/count?namespace=&room=lobby",
            "/v1/count?namespace=&room=lobby",
            "/v1/count?namespace=&room=lobby",
        ])

    def test_outside_a_receiver_sockets_use_the_api(self):
        s = realtime.Socket("s1", "/chat")
        with self.settings(REALTIME_API_URL=self.url, REALTIME_API_KEY="k3y"):
            s.emit("news", {"t": 1})
            s.send("hi")
            s.broadcast_emit("all")
            s.to("lobby").send({"x": 1}, json=True)
            s.join("lobby")
            s.disconnect()
        self.assertEqual([(c[1], c[3]) for c in FakeAPI.calls], [
            ("/v1/emit", {"namespace": "/chat", "socket": "s1", "event": "news", "args": [{"t": 1}]}),
            ("/v1/send", {"namespace": "/chat", "socket": "s1", "message": "hi"}),
            ("/v1/emit", {"namespace": "/chat", "except": "s1", "event": "all", "args": []}),
            ("/v1/json", {"namespace": "/chat", "room": "lobby", "except": "s1", "data": {"x": 1}}),
            ("/v1/join", {"namespace": "/chat", "socket": "s1", "room": "lobby"}),
            ("/v1/disconnect", {"namespace": "/chat", "socket": "s1"}),
        ])
        self.assertTrue(all(c[2] == "Bearer k3y" for c in FakeAPI.calls))

    def test_api_errors(self):
        with self.settings(REALTIME_API_URL=self.url, REALTIME_API_KEY="wrong"):
            with self.assertRaises(realtime.RealtimeAPIError) as e:
                realtime.connected_sockets.count()
            self.assertEqual((e.exception.status, e.exception.reason), (401, "unauthorized"))
        with self.settings(REALTIME_API_URL=self.url, REALTIME_API_KEY="k3y"):
            with self.assertRaises(realtime.RealtimeAPIError) as e:
                realtime.Socket("gone").emit("x")
            self.assertEqual((e.exception.status, e.exception.reason), (404, "unknown_socket"))
        with self.settings(REALTIME_API_URL="http://127.0.0.1:1"):
            with self.assertRaises(realtime.RealtimeAPIError) as e:
                realtime.connected_sockets.count()
            self.assertEqual(e.exception.status, 0)

    def test_emit_ack_needs_a_receiver(self):
        with self.assertRaises(RuntimeError):
            realtime.Socket("s1").emit_ack("q")


class TemplateTagTests(TestCase):
    def test_client_script(self):
        html = Template("{% load socketio %}{% socketio_client_script %}").render(Context())
        self.assertEqual(html, '<script src="/socket.io/socket.io.js"></script>')
        with self.settings(REALTIME_CLIENT_SCRIPT_URL="https://rt.example/socket.io/socket.io.js?v=1&x=2"):
            html = Template("{% load socketio %}{% socketio_client_script %}").render(Context())
        self.assertEqual(html, '<script src="https://rt.example/socket.io/socket.io.js?v=1&amp;x=2"></script>')


class EncodingTests(EffectCase):
    def test_unencodable_effect_fails_its_signal_only(self):
        def receiver(sender, event, **kw):
            sender.emit("x", float("nan") if event.name == "nan" else object() if event.name == "obj" else 1)
        self.on(signals.socket_client_event, receiver)
        results = self.results(sig("event", 1, name="ok", args=[]), sig("event", 2, name="nan", args=[]))
        self.assertEqual(results[0], {"effects": [{"op": "emit", "name": "x", "args": [1]}]})
        self.assertIn("ValueError", results[1]["error"])
        results = self.results(sig("event", 3, name="obj", args=[]))
        self.assertIn("TypeError", results[0]["error"])

    def test_django_values(self):
        import datetime
        import decimal
        res = self.effects_of(lambda sender, **kw: sender.emit(
            "x", datetime.datetime(2026, 11, 30, 18, 0, tzinfo=datetime.timezone.utc), decimal.Decimal("1.5")))
        self.assertEqual(res, {"effects": [{"op": "emit", "name": "x", "args": ["2026-11-30T18:00:00Z", "1.5"]}]})

    def test_bad_signal_shape_is_an_error(self):
        results = self.results({"type": "event"})
        self.assertIn("KeyError", results[0]["error"])
