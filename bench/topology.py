"""Production's topology on loopback, from the repository's own unit and site files: ``make prod-like``.

nginx (Debian's package) on one port proxies HTTP and websockets to TWO Daphne processes; TWO
Celery workers and one beat run beside them; PostgreSQL and Redis come from the environment
(``DATABASE_URL``, ``REDIS_URL``). Every command line is the ``ExecStart`` of a unit in
``deploy/systemd/`` and nginx's server block is ``deploy/nginx/parley.conf``, rendered here with
this checkout's paths and free loopback ports instead of ``/srv/parley`` and ports 80, 8001, 8002,
so running this runs (and tests) the files a deployment installs.

``python -m bench.topology [--port 8080]`` runs it until Ctrl-C; the fault bench
(``bench.faults``) and the stack tests (``tests/reliability/``) drive :class:`Topology` from Python:
they kill, stop and restart its processes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import free_port as free_port  # the benchmarks' own, used here and by bench.faults

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PRODUCTION_ROOT = "/srv/parley"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def unit_command(unit: str, *, instance: str = "", var_dir: Path) -> list[str]:
    """The ``ExecStart`` of ``deploy/systemd/<unit>`` for this checkout, its venv and ``instance``."""
    lines = (DEPLOY / "systemd" / unit).read_text().splitlines()
    exec_start = next(line.split("=", 1)[1] for line in lines if line.startswith("ExecStart="))
    venv = str(Path(sys.executable).parent.parent)
    exec_start = (
        exec_start.replace(f"{PRODUCTION_ROOT}/.venv", venv)
        .replace(f"{PRODUCTION_ROOT}/var", str(var_dir))
        .replace(PRODUCTION_ROOT, str(ROOT))
        .replace("%i", instance)
        .replace("%H", socket.gethostname())
    )
    return shlex.split(exec_start)


def nginx_site(*, port: int, web_ports: list[int]) -> str:
    """``deploy/nginx/parley.conf`` for loopback: its listen line, upstream ports and paths."""
    site = (DEPLOY / "nginx" / "parley.conf").read_text()
    assert "listen 80;" in site
    assert "server 127.0.0.1:8001 " in site
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
    for production, ours in zip((8001, 8002), web_ports, strict=True):
        site = site.replace(f"server 127.0.0.1:{production} ", f"server 127.0.0.1:{ours} ")
    return site.replace(PRODUCTION_ROOT, str(ROOT))


def nginx_main(run_dir: Path, site: Path) -> str:
    """A minimal nginx.conf around the site: files in ``run_dir``, an access log naming the upstream."""
    temp = run_dir / "nginx-temp"
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}worker_processes 1;
pid {run_dir}/nginx.pid;
error_log {run_dir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    log_format parley '$remote_addr "$request" $status $upstream_addr';
    access_log {run_dir}/nginx-access.log parley;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {site};
}}
"""


@dataclass
class Topology:
    """nginx, two web processes, two workers and beat, started from the deploy/ files."""

    run_dir: Path
    env: dict[str, str]
    port: int = 0
    web_ports: list[int] = field(default_factory=list)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def web_url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.web_ports[n - 1]}"

    def commands(self) -> dict[str, list[str]]:
        var_dir = Path(self.env.get("PARLEY_VAR_DIR") or ROOT / "var")
        commands = {
            f"web{n}": unit_command("parley-web@.service", instance=str(port), var_dir=var_dir)
            for n, port in enumerate(self.web_ports, start=1)
        }
        for n in (1, 2):
            commands[f"worker{n}"] = unit_command("parley-worker@.service", instance=str(n), var_dir=var_dir)
        commands["beat"] = unit_command("parley-beat.service", var_dir=var_dir)
        commands["nginx"] = [NGINX, "-c", str(self.run_dir / "nginx.conf"), "-g", "daemon off;"]
        return commands

    def start(self) -> Topology:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "nginx-temp").mkdir(exist_ok=True)
        Path(self.env.get("PARLEY_VAR_DIR") or ROOT / "var").mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.web_ports = self.web_ports or [free_port(), free_port()]
        site = self.run_dir / "parley.conf"
        site.write_text(nginx_site(port=self.port, web_ports=self.web_ports))
        (self.run_dir / "nginx.conf").write_text(nginx_main(self.run_dir, site))
        for name in self.commands():
            self.start_process(name)
        for port in [*self.web_ports, self.port]:
            wait_for_port(port, timeout=60, why=self.tail)
        return self

    def wait_ready(self, timeout: float = 120) -> None:
        """Until ``/healthz`` through nginx says the database, Redis and a worker answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as answer:  # noqa: S310 - our URL
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError("the topology did not become healthy:\n" + self.tail())

    def start_process(self, name: str) -> None:
        """(Re)start one process by name: web1, web2, worker1, worker2, beat, nginx."""
        log = (self.run_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            self.commands()[name], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal a process and its children (a worker's pool) and wait for it to go."""
        process = self.processes[name]
        for child in _children(process.pid):
            os.kill(child, sig)
        process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill(name, signal.SIGKILL)

    def wait_for_web(self, n: int, timeout: float = 60) -> None:
        wait_for_port(self.web_ports[n - 1], timeout=timeout, why=self.tail)

    def tail(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}" for log in sorted(self.run_dir.glob("*.log"))
        )

    def stop(self) -> None:
        for _name, process in self.processes.items():
            if process.poll() is None:
                for child in _children(process.pid):
                    _signal(child, signal.SIGTERM)
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc: no dependency for one loop)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_for_port(port: int, *, timeout: float, why: object = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}" + (f":\n{why()}" if callable(why) else ""))


def prepare(env: dict[str, str]) -> None:
    """What a deployment does before starting the units: migrate, collect static files."""
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    subprocess.run([*manage, "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)


def topology_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the units: the caller's, behind one proxy, static files served by nginx."""
    env = dict(os.environ if base is None else base)
    env.update({"BEHIND_PROXY": "1", "TRUSTED_PROXY_COUNT": "1", "SERVE_STATIC": "0", "PYTHONUNBUFFERED": "1"})
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8080, help="nginx's loopback port")
    parser.add_argument("--run-dir", type=Path, default=ROOT / "var" / "prod-like")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")) or not os.environ.get(
        "REDIS_URL"
    ):
        sys.exit("make prod-like runs production's topology: set DATABASE_URL (PostgreSQL) and REDIS_URL")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the processes as Ctrl-C does
    env = topology_env()
    prepare(env)
    topology = Topology(run_dir=args.run_dir, env=env, port=args.port)
    try:
        topology.start()
        topology.wait_ready()
        print(
            f"Parley on {topology.url} (nginx) -> web {topology.web_ports}, 2 workers, beat; logs in {args.run_dir}. "
            "Ctrl-C stops it."
        )
        while all(process.poll() is None for process in topology.processes.values()):
            time.sleep(1)
        print("a process exited:\n" + topology.tail())
    except KeyboardInterrupt:
        pass
    finally:
        topology.stop()


if __name__ == "__main__":
    main()
