"""WSGI entry point: ``gunicorn echoproject.wsgi`` from examples/django."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "python", "django-realtime"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "echoproject.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
