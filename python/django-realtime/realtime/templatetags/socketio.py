"""The ``socketio`` template library: ``{% load socketio %}``.

``{% socketio_client_script %}`` renders the ``<script>`` tag of the
Socket.IO 0.9 client (REALTIME_CLIENT_SCRIPT_URL, default
``/socket.io/socket.io.js``, which a gateway started with
``-client-script`` serves)."""

from django import template
from django.utils.html import format_html

from .. import conf

register = template.Library()


@register.simple_tag
def socketio_client_script():
    return format_html('<script src="{}"></script>', conf.client_script_url())
