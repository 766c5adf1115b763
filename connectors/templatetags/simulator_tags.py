"""``{% simulator_link path %}``: the top navigation's link to the simulator, only while it is on."""

from __future__ import annotations

from typing import Any

from django import template

from connectors import simulator

register = template.Library()


@register.inclusion_tag("connectors/simulator_link.html")
def simulator_link(path: str) -> dict[str, Any]:
    return {"enabled": simulator.enabled(), "current": path.startswith("/simulator/")}
