#!/usr/bin/python3
"""Runs the realtime app's unit tests with Django's test runner, on Debian's
python3-django: ``/usr/bin/python3 runtests.py [-v 2] [test labels]``.

Without Django it exits 1 (CI must fail, never skip)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    sys.path.insert(0, HERE)
    os.environ["DJANGO_SETTINGS_MODULE"] = "test_settings"
    for name in ("REALTIME_SECRET", "REALTIME_API_URL", "REALTIME_API_KEY"):
        os.environ.pop(name, None)  # the tests set their own
    try:
        import django
    except ImportError:
        sys.exit("runtests.py: Django is not installed for %s (apt-get install python3-django)" % sys.executable)
    from django.core.management import execute_from_command_line

    execute_from_command_line([sys.argv[0], "test", *(sys.argv[1:] or ["realtime"])])
