"""Redis Sentinel in the settings: with REDIS_SENTINELS every Redis user of Parley — the cache, the
broker, the channel layer, our own clients — finds the master through a real sentinel, and follows
it when the sentinel fails over to the replica."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import ROOT, database_url, free_port

# `stack`: it starts real servers (two redis-servers and a sentinel) and times a failover, so it runs in the
# serial pass of `make test`, not beside another worker's tests.
pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
]


class Redises:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.master, self.replica, self.sentinel = free_port(), free_port(), free_port()
        self.processes: list[subprocess.Popen[bytes]] = []

    def server(self, *args: str) -> None:
        log = (self.base / f"redis-{len(self.processes)}.log").open("wb")
        self.processes.append(subprocess.Popen(["redis-server", *args], stdout=log, stderr=subprocess.STDOUT))

    def start(self) -> None:
        # Its own folder: a replica's first sync makes the master write dump.rdb there.
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.base)]
        self.server("--port", str(self.master), *common)
        self.server("--port", str(self.replica), *common, "--replicaof", "127.0.0.1", str(self.master))
        conf = self.base / "sentinel.conf"
        conf.write_text(
            f"port {self.sentinel}\nbind 127.0.0.1\ndir {self.base}\n"
            f"sentinel monitor mymaster 127.0.0.1 {self.master} 1\n"
            "sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n",
            encoding="utf-8",
        )
        self.server(str(conf), "--sentinel")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                info = redis.Redis(port=self.replica).info("replication")
                known = redis.Redis(port=self.sentinel).sentinel_master("mymaster")
                if info.get("master_link_status") == "up" and known.get("num-slaves", 0) >= 1:
                    return
            except redis.ConnectionError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the sentinel did not see the master and its replica")

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def redises(tmp_path) -> Iterator[Redises]:
    found = Redises(tmp_path)
    try:
        found.start()
        yield found
    finally:
        found.stop()


SCRIPT = """
import django; django.setup()
import asyncio, json
from channels.layers import get_channel_layer
from django.core.cache import cache
from common import redisconn
from inbox.tasks import ping
from ops import store

cache.set("sentinel-probe", "cached", 60)
out = {"cache": cache.get("sentinel-probe"), "store": store.client().ping()}
ping.apply_async(queue="obs-sentinel-probe")

async def layer_and_presence():
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "probe.message", "text": "through the layer"})
    message = await asyncio.wait_for(layer.receive(channel), 10)
    client = redisconn.async_client(decode_responses=True)
    await client.set("presence-probe", "online")
    return message["text"], await client.get("presence-probe")

out["layer"], out["presence"] = asyncio.run(layer_and_presence())
print(json.dumps(out))
"""


def run(redises: Redises) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url(),
            "REDIS_SENTINELS": f"127.0.0.1:{redises.sentinel}",
            "REDIS_SENTINEL_MASTER": "mymaster",
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.django_db
def test_every_redis_user_finds_the_master_through_the_sentinel_and_follows_a_failover(redises):
    seen = run(redises)
    assert seen == {"cache": "cached", "store": True, "layer": "through the layer", "presence": "online"}
    master = redis.Redis(port=redises.master)
    assert master.llen("obs-sentinel-probe") == 1  # the broker's queue is on the master
    assert master.get("presence-probe") == b"online"

    # The master dies: the sentinel promotes the replica, and a new process finds it.
    redises.processes[0].kill()
    sentinel = redis.Redis(port=redises.sentinel)
    deadline = time.monotonic() + 30
    while sentinel.sentinel_get_master_addr_by_name("mymaster")[1] != redises.replica:
        assert time.monotonic() < deadline, "the sentinel did not fail over"
        time.sleep(0.2)
    assert run(redises) == {"cache": "cached", "store": True, "layer": "through the layer", "presence": "online"}
    assert redis.Redis(port=redises.replica).llen("obs-sentinel-probe") == 2  # one before, replicated; one after
