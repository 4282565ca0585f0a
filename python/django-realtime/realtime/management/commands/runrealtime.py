"""``manage.py runrealtime [addrport] [runserver's options]``: the
development loop, as django-realtime's ``rungevent`` was: runs Django's
development server and, next to it, a whole local cluster (the repository's
``demo`` binary: an in-memory Redis, a gateway, and a worker bridging every
signal to this server's ``/realtime/``, with the server HTTP API on).

Options besides runserver's:

- ``--cluster-addr`` (default ``127.0.0.1:8080``): where Socket.IO clients
  connect (the gateway; it serves ``/socket.io/socket.io.js`` too);
- ``--api-addr`` (default ``127.0.0.1:8200``): the server HTTP API;
- ``--demo`` (default ``$REALTIME_DEMO``, else ``bin/demo`` of the
  repository this app is in; ``make build`` makes it): the demo binary;
- ``--bridge-path`` (default ``/realtime/``): where ``realtime.urls`` is
  mounted.

REALTIME_SECRET (a random one when unset) and REALTIME_API_URL are put in
the environment of both processes; values in Django's settings win over
them. The cluster stops with the server (Ctrl-C, SIGTERM). Everything is in
memory: a restart of the cluster loses its sessions (clients reconnect).
"""

import atexit
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time

from django.core.management.base import CommandError
from django.core.management.commands.runserver import Command as RunserverCommand
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV

from ... import conf

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", ".."))


def _die_with_parent():
    """In the demo process: end it when this process dies (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (AttributeError, OSError):
        pass


class Command(RunserverCommand):
    help = "Runs the development server with a local realtime cluster bridged to it."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--cluster-addr", default="127.0.0.1:8080",
                            help="where Socket.IO clients connect (default 127.0.0.1:8080)")
        parser.add_argument("--api-addr", default="127.0.0.1:8200",
                            help="the server HTTP API's address (default 127.0.0.1:8200)")
        parser.add_argument("--demo", default=os.environ.get("REALTIME_DEMO") or os.path.join(REPO, "bin", "demo"),
                            help="the realtime demo binary (default $REALTIME_DEMO, else bin/demo of this repository)")
        parser.add_argument("--bridge-path", default="/realtime/",
                            help="where realtime.urls is mounted (default /realtime/)")

    demo = None

    def run(self, **options):
        if os.environ.get(DJANGO_AUTORELOAD_ENV) != "true":  # the reloader's parent, or --noreload
            self.start_cluster(options)
        try:
            super().run(**options)
        finally:
            self.stop_cluster()

    def start_cluster(self, options):
        demo = options["demo"]
        if not os.access(demo, os.X_OK):
            raise CommandError("no realtime demo binary at %s: run `make build` in %s, or pass --demo" % (demo, REPO))
        os.environ["REALTIME_SECRET"] = conf.get("REALTIME_SECRET") or secrets.token_hex(16)
        os.environ.setdefault("REALTIME_API_URL", "http://" + options["api_addr"])
        host = self.addr if self.addr not in ("0.0.0.0", "::", "") else "127.0.0.1"
        if ":" in host:
            host = "[%s]" % host
        endpoint = "http://%s:%s%s" % (host, self.port, options["bridge_path"])
        args = [demo, "-addr", options["cluster_addr"], "-http-endpoint", endpoint, "-api-addr", options["api_addr"]]
        # The repository's demo finds its page and client script from the repository's root.
        cwd = REPO if os.path.isdir(os.path.join(REPO, "web")) else None
        self.demo = subprocess.Popen(args, cwd=cwd, preexec_fn=_die_with_parent)
        atexit.register(self.stop_cluster)
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            if self.demo.poll() is not None:
                raise CommandError("the realtime demo exited (status %s); see its error above" % self.demo.returncode)
            time.sleep(0.05)
        self.stdout.write("Realtime cluster: Socket.IO clients at http://%s/, bridged to %s, server API at %s"
                          % (options["cluster_addr"], endpoint, os.environ["REALTIME_API_URL"]))

    def stop_cluster(self):
        demo, self.demo = self.demo, None
        if demo is None or demo.poll() is not None:
            return
        demo.terminate()
        try:
            demo.wait(10)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
