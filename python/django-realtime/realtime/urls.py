"""``path('realtime/', include('realtime.urls'))`` mounts the bridge
endpoint at ``/realtime/``: the URL to give ``worker -app http
-http-endpoint``."""

from django.urls import path

from . import views

app_name = "realtime"

urlpatterns = [
    path("", views.bridge, name="bridge"),
]
