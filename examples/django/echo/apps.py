from django.apps import AppConfig


class EchoConfig(AppConfig):
    name = "echo"

    def ready(self):
        from . import receivers  # noqa: F401 (connects the receivers)
