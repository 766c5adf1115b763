"""Production's topology (``make prod-like``, from deploy/'s unit and site files): an operator whose
websocket went through nginx to one web process sees live what a webhook that nginx gave to the
other web process caused."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from asgiref.sync import sync_to_async

from inbox.models import Message
from tests.fakes.twilio import FakeTwilio, fixture, form, twilio_channel
from tests.reliability.conftest import operator_session

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]


def upstreams(topology) -> list[tuple[str, str]]:
    """(request, web process address) of each request nginx has finished, in order."""
    lines = (topology.run_dir / "nginx-access.log").read_text().splitlines()
    return [(line.split('"')[1], line.rsplit(" ", 1)[1]) for line in lines]


async def test_a_websocket_on_one_web_process_sees_a_webhook_taken_by_the_other(topology, support, alice):
    line = await sync_to_async(twilio_channel)("twilio-sms", team=support, public_base_url=topology.url)
    cookies = await sync_to_async(operator_session)(alice)
    twilio = FakeTwilio()
    url = f"{topology.url}/hooks/{line.key}/inbound/"
    sids = [f"SM00000000000000000000000000000{n:03d}" for n in range(4)]
    async with (
        aiohttp.ClientSession(cookies=cookies) as session,
        session.ws_connect(f"{topology.url}/ws/inbox/", headers={"Origin": topology.url}) as socket,
    ):
        for n, sid in enumerate(sids):
            params = form(fixture("sms.txt").replace("SM00000000000000000000000000000001", sid))
            params["From"] = f"+1500555{n:04d}"
            headers = {"X-Twilio-Signature": twilio.sign(url, params)}
            async with session.post(url, data=params, headers=headers) as answer:
                assert answer.status == 200
        seen: set[int] = set()
        wanted: set[int] = set()
        async with asyncio.timeout(20):
            while not wanted or not wanted <= seen:
                try:
                    frame = await asyncio.wait_for(socket.receive(), timeout=1)
                except TimeoutError:
                    frame = None
                if frame is not None and frame.type == aiohttp.WSMsgType.TEXT and frame.data.startswith("{"):
                    seen.update(json.loads(frame.data).get("conversations", []))
                wanted = set(
                    await sync_to_async(list)(
                        Message.objects.filter(provider_id__in=sids).values_list("conversation_id", flat=True)
                    )
                )
                if len(wanted) < len(sids):
                    wanted = set()  # not all stored yet
    await asyncio.sleep(0.5)  # nginx logs the websocket once it is closed
    served = upstreams(topology)
    socket_web = next(web for request, web in served if request.startswith("GET /ws/inbox/"))
    hook_webs = {web for request, web in served if request.startswith(f"POST /hooks/{line.key}/")}
    assert hook_webs - {socket_web}, "nginx gave every webhook to the websocket's web process"
    assert len({f"127.0.0.1:{port}" for port in topology.web_ports} & (hook_webs | {socket_web})) == 2
