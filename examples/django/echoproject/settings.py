"""Settings of the Django examples: the echo app (namespaces "" and /chat,
no database) and the chat (namespace /chatroom, its state in a SQLite file:
CHAT_DB, default chat.sqlite3 here; ``manage.py migrate`` creates it). No
middleware; the realtime settings (REALTIME_SECRET, REALTIME_API_URL,
REALTIME_API_KEY) come from the environment."""

import os

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "echo-example-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
INSTALLED_APPS = ["realtime", "echo", "chat"]
MIDDLEWARE = []
ROOT_URLCONF = "echoproject.urls"
WSGI_APPLICATION = "echoproject.wsgi.application"
# One file shared by every process on this machine (gunicorn's workers);
# several machines need a shared database server (PostgreSQL) instead.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("CHAT_DB") or os.path.join(HERE, "chat.sqlite3"),
        "OPTIONS": {"timeout": 20},
    }
}
USE_TZ = True
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"realtime": {"handlers": ["console"], "level": "INFO"}},
}
