"""The chat's state, shared by every process serving the bridge (gunicorn's
workers, several machines with a shared database): examples/chat keeps the
same in Redis. Each receiver reads and writes it in one transaction."""

from django.db import models
from django.db.models import Q

MAX_NICK = 32  # characters
MAX_ROOM = 64  # characters
MAX_KEY = 64  # bytes
MAX_ID = 64  # bytes


class Member(models.Model):
    """A session of the chat's namespace that chose a nickname: its
    nickname, the page's key, the room it is in ("" when none). A nickname
    is unique per room, compared as ``folded`` (lower case): the database
    refuses a second holder, so two processes cannot both give it out."""

    sid = models.CharField(primary_key=True, max_length=64)
    nick = models.CharField(max_length=MAX_NICK)
    folded = models.CharField(max_length=MAX_NICK * 3)
    key = models.CharField(max_length=MAX_KEY, blank=True)
    room = models.CharField(max_length=MAX_ROOM, blank=True)
    #: The id of the signal that put the session in ``room``: the same
    #: signal sent again (its first answer was lost) joins again.
    joined_by = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "folded"], condition=~Q(room=""), name="chat_nick_unique_in_room"),
        ]
        indexes = [models.Index(fields=["room"], name="chat_member_room")]


class Said(models.Model):
    """A line said under a page's key and the client's message id, by
    ``signal`` (sid and signal id); kept for SAID_TTL against duplicates."""

    key = models.CharField(max_length=MAX_KEY)
    msg_id = models.CharField(max_length=MAX_ID)
    signal = models.CharField(max_length=200)
    at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "msg_id"], name="chat_said_once")]
