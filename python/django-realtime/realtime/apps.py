from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    """The ``realtime`` Django app: the bridge endpoint and its signals."""

    name = "realtime"
    verbose_name = "Realtime (Socket.IO 0.9 bridge)"
