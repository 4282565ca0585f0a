"""django-realtime's chat example, grown up for a cluster: the protocol of
examples/chat (Go) in namespace /chatroom, written with django-realtime's
API, so that web/chat's page works against either. Events from the client,
each answered through its ack (a refusal is ``{"error": text}``, sent with
``realtime.Reject``):

- ``nick`` [name, key?] -> ``{"nick"}``; in a room the others get notice
  "a is now b";
- ``join`` [room] -> leaves the current room, joins this one;
  ``{"room", "nick", "users"}``;
- ``say`` [text, id?] -> ``{"ok": true, "ts"}``; the room gets ``said``
  ``{"nick", "text", "ts", "id"?}``.

Events to the client: ``notice`` ``{"kind", "text", "ts"}`` (kind is join,
back, leave or rename), ``users`` [names…] (the room's user list, sorted,
after every change), ``said``. Times (ts) are Unix milliseconds.

A nickname is unique per room (case-insensitively). The optional key is a
random secret the page makes once per page load: a session holding the
nickname with the same key is an earlier session of that page (it
reconnected), which join and nick end and replace ("a is back"). A line sent
again under the same key and id is acked but not said twice.

The state lives in the database (chat.models), not in this process: the
bridge may send a session's signals to any gunicorn worker. Each receiver
reads and writes it in one transaction and raises, rather than answering,
when the database refuses (a nickname taken meanwhile by another process,
a locked SQLite file): the bridge then sends the signal again, and that
attempt sees the other process's write. Since a signal may be handled again
after its writes were committed (its answer was lost), writes are
idempotent and join recognizes its own signal (``Member.joined_by``).
"""

import time
import unicodedata
from datetime import timedelta

from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

import realtime
from realtime.signals import socket_client_event_by_type, socket_disconnected

from .models import MAX_ID, MAX_KEY, MAX_NICK, MAX_ROOM, Member, Said

NAMESPACE = "/chatroom"
MAX_TEXT = 2000  # characters
SAID_TTL = timedelta(minutes=10)  # longer than any page's reconnect


def in_chat(fn):
    """Runs a receiver for sockets of the chat's namespace only (the echo
    app serves the others in this project)."""
    def only_chat(sender, **kwargs):
        if sender.namespace == NAMESPACE:
            fn(sender, **kwargs)
    only_chat.__name__ = fn.__name__
    return only_chat


def refusal(text):
    """The ack of a refused event."""
    return realtime.Reject({"error": text})


def notice(kind, text):
    return {"kind": kind, "text": text, "ts": int(time.time() * 1000)}


def fold(nick):
    """The form in which nicknames are compared: Bob and bob are one name."""
    return nick.lower()


def strings(event, usage, required):
    """The event's first arguments as strs (``required`` of them, then
    optional ones as ""), or a refusal with ``usage``."""
    args = list(event.args[:2])
    if len(args) < required or not all(isinstance(a, str) for a in args):
        raise refusal(usage)
    return args + [""] * (2 - len(args))


def check_name(name, limit, what):
    """Refuses name (a nickname or room, already stripped) unless it has 1
    to ``limit`` characters and no control or line separator characters."""
    if not name:
        raise refusal(what + " cannot be blank")
    if len(name) > limit:
        raise refusal("%s has at most %d characters (this one has %d)" % (what, limit, len(name)))
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name):
        raise refusal(what + " cannot contain control characters or line breaks")


def taken(nick, room):
    return refusal("The nickname %s is taken in %s: choose another" % (nick, room))


def users(room):
    """The nicknames in room, sorted case-insensitively."""
    names = Member.objects.filter(room=room).values_list("nick", flat=True)
    return sorted(names, key=lambda n: (fold(n), n))


def claim(sid, room, nick, key):
    """Whether session ``sid`` may hold ``nick`` in ``room``, and whether it
    replaced an earlier session of the same page (same key), which leaves
    the room silently and is disconnected. Inside a transaction."""
    holder = Member.objects.filter(room=room, folded=fold(nick)).exclude(sid=sid).first()
    if holder is None:
        return True, False
    if not key or holder.key != key:
        return False, False
    Member.objects.filter(sid=holder.sid).update(room="", joined_by="")
    realtime.Socket(holder.sid).disconnect()  # the whole session, wherever it is held
    return True, True


def leave(sender, room, what, members):
    """Takes sender out of room and tells the others."""
    sender.leave(room)
    sender.to(room).emit("notice", what)
    sender.to(room).emit("users", members)


@receiver(socket_client_event_by_type["nick"])
@in_chat
def nick(sender, request, event, **kwargs):
    name, key = strings(event, "nick takes a name (and the page's key)", 1)
    name = name.strip()
    check_name(name, MAX_NICK, "A nickname")
    if len(key.encode()) > MAX_KEY:
        raise refusal("the key has at most %d bytes" % MAX_KEY)
    sid = sender.session.session_id
    with transaction.atomic():
        me = Member.objects.filter(sid=sid).first() or Member(sid=sid)
        old, room, key = me.nick, me.room, key or me.key
        if room and fold(name) != fold(old):
            ok, _ = claim(sid, room, name, key)
            if not ok:
                raise taken(name, room)  # nothing written: the transaction rolls back
        me.nick, me.folded, me.key = name, fold(name), key
        me.save()
        members = users(room) if room else []
    if room and old != name:
        what = notice("rename", "%s is now %s" % (old, name))
        for target in (sender.to(room), sender):
            target.emit("notice", what)
            target.emit("users", members)
    event.ack({"nick": name})


@receiver(socket_client_event_by_type["join"])
@in_chat
def join(sender, request, event, **kwargs):
    room = strings(event, "join takes a room name", 1)[0].strip()
    check_name(room, MAX_ROOM, "A room name")
    sid, signal = sender.session.session_id, request.realtime_signal["id"]
    with transaction.atomic():
        me = Member.objects.filter(sid=sid).first()
        if me is None or not me.nick:
            raise refusal("Choose a nickname first")
        if me.room == room and me.joined_by != signal:
            # There already (an earlier join): nothing to announce.
            event.ack({"room": room, "nick": me.nick, "users": users(room)})
            return
        ok, replaced = claim(sid, room, me.nick, me.key)
        if not ok:
            raise taken(me.nick, room)
        prev = me.room if me.room != room else ""
        me.room, me.joined_by = room, signal
        me.save()
        members = users(room)
        prev_members = users(prev) if prev else []
    if prev:
        leave(sender, prev, notice("leave", "%s left for %s" % (me.nick, room)), prev_members)
    sender.join(room)
    if replaced:
        sender.to(room).emit("notice", notice("back", me.nick + " is back"))
    else:
        sender.to(room).emit("notice", notice("join", me.nick + " joined"))
    sender.to(room).emit("users", members)
    event.ack({"room": room, "nick": me.nick, "users": members})


@receiver(socket_client_event_by_type["say"])
@in_chat
def say(sender, request, event, **kwargs):
    text, msg_id = strings(event, "say takes some text (and a message id)", 1)
    if not text.strip():
        raise refusal("say takes some text")
    if len(text) > MAX_TEXT:
        raise refusal("That line has %d characters; the limit is %d" % (len(text), MAX_TEXT))
    if len(msg_id.encode()) > MAX_ID:
        raise refusal("a message id has at most %d bytes" % MAX_ID)
    sid = sender.session.session_id
    me = Member.objects.filter(sid=sid).first()
    if me is None or not me.room or not me.nick:
        raise refusal("Join a room first")
    ts = request.realtime_signal.get("time") or int(time.time() * 1000)
    if msg_id and me.key and said(me.key, msg_id, sid + " " + request.realtime_signal["id"]):
        event.ack({"ok": True, "ts": ts, "duplicate": True})
        return
    line = {"nick": me.nick, "text": text, "ts": ts}
    if msg_id:
        line["id"] = msg_id
    sender.to(me.room).emit("said", line)
    sender.emit("said", line)
    event.ack({"ok": True, "ts": ts})


def said(key, msg_id, signal):
    """Records that ``signal`` says the line (key, msg_id); whether another
    signal said it already. The same signal handled again is no duplicate:
    its first answer was never committed."""
    now = timezone.now()
    with transaction.atomic():
        Said.objects.filter(at__lt=now - SAID_TTL).delete()
        line, created = Said.objects.get_or_create(key=key, msg_id=msg_id, defaults={"signal": signal, "at": now})
    return not created and line.signal != signal


@receiver(socket_disconnected)
@in_chat
def gone(sender, request, **kwargs):
    # By session id only: a disconnect that comes after its session is gone
    # has no handshake (request is empty).
    with transaction.atomic():
        me = Member.objects.filter(sid=sender.session.session_id).first()
        if me is None:
            return
        me.delete()
        members = users(me.room) if me.room else []
    if me.room:
        leave(sender, me.room, notice("leave", me.nick + " left"), members)
