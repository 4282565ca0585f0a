#!/usr/bin/python3
"""The echo example's manage.py: ``/usr/bin/python3 manage.py runserver
127.0.0.1:8000 --noreload`` serves the bridge endpoint at /realtime/."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# The realtime app from this repository (python/django-realtime).
sys.path.insert(0, os.path.join(HERE, "..", "..", "python", "django-realtime"))

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "echoproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
