"""Settings of the echo example: no database, no middleware; the realtime
settings (REALTIME_SECRET, REALTIME_API_URL, REALTIME_API_KEY) come from the
environment."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "echo-example-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
INSTALLED_APPS = ["realtime", "echo"]
MIDDLEWARE = []
ROOT_URLCONF = "echoproject.urls"
WSGI_APPLICATION = "echoproject.wsgi.application"
DATABASES = {}
USE_TZ = True
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"realtime": {"handlers": ["console"], "level": "INFO"}},
}
