"""The operator UI's Content-Security-Policy (issue 12, item 13): the header on every page, and
nothing in our templates or scripts that needs it weakened."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from inbox.services import inbound
from inbox.transport import InboundMessage

ROOT = Path(__file__).resolve().parents[2]
CSP = "Content-Security-Policy"


def directives(header: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


@pytest.fixture
def conversation(sms):
    return inbound.receive_message(
        channel=sms, inbound=InboundMessage(provider_id="csp-1", address="+15005550006", text="Hello", name="Dora")
    ).conversation


@pytest.mark.parametrize(
    "path",
    ["/", "/c/{conversation}/", "/customers/", "/search/", "/reports/", "/replies/", "/simulator/", "/kb/", "/admin/"],
)
def test_every_operator_page_carries_a_policy_without_inline_script_or_eval(client, admin, conversation, path):
    client.force_login(admin)
    response = client.get(path.format(conversation=conversation.pk))
    assert response.status_code == 200
    policy = directives(response[CSP])
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert "'unsafe-inline'" not in response[CSP]
    assert "'unsafe-eval'" not in response[CSP]


def test_the_login_page_and_htmx_fragments_carry_the_policy_too(client, alice, conversation):
    assert "script-src 'self'" in client.get("/login/")[CSP]
    client.force_login(alice)
    fragment = client.get(f"/c/{conversation.pk}/", headers={"HX-Request": "true", "HX-Target": "thread-pane"})
    assert fragment.status_code == 200
    assert "script-src 'self'" in fragment[CSP]


def test_only_operators_with_a_phone_line_get_twilios_hosts_in_their_policy(client, alice, bob, support):
    from tests.fakes.twilio import twilio_channel

    twilio_channel("twilio-voice", team=support, from_number="+15555550100")
    client.force_login(alice)
    with_phone = directives(client.get("/")[CSP])
    assert "wss://*.twilio.com" in with_phone["connect-src"]
    assert "https://sdk.twilio.com" in with_phone["media-src"]
    assert with_phone["script-src"] == ["'self'"]  # the SDK is served from static/, not from Twilio
    client.force_login(bob)  # Sales has no phone line
    assert "twilio" not in client.get("/")[CSP]


# -- what the policy forbids is absent from our own files ----------------------------------------------

TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))
INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE), "an inline <script> (put it in static/*.js)"),
    (re.compile(r"\son[a-z]+\s*=", re.IGNORECASE), "an inline event handler (listen in static/*.js)"),
    (re.compile(r"\bhx-on[:\-]", re.IGNORECASE), "hx-on (needs eval; listen in static/*.js)"),
    (re.compile(r"javascript:", re.IGNORECASE), "a javascript: URL"),
    (re.compile(r"<style", re.IGNORECASE), "an inline <style> (put it in static/*.css)"),
    (re.compile(r"\sstyle\s*=", re.IGNORECASE), "a style attribute (use a class)"),
    (re.compile(r"hx-trigger=\"[^\"]*\[", re.IGNORECASE), "an htmx trigger filter (needs eval)"),
    (re.compile(r"hx-vals='\s*js:|hx-vals=\"\s*js:|hx-vars", re.IGNORECASE), "evaluated hx-vals (needs eval)"),
]


def test_templates_exist_to_be_checked():
    assert len(TEMPLATES) > 20


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: str(path.relative_to(ROOT / "templates")))
def test_no_template_needs_inline_script_style_or_eval(template):
    text = template.read_text(encoding="utf-8")
    text = re.sub(r"\{#.*?#\}", "", text, flags=re.DOTALL)  # comments may talk about these
    found = [f"{what}: {match.group(0)!r}" for pattern, what in INLINE for match in pattern.finditer(text)]
    assert not found, found


@pytest.mark.parametrize("script", sorted((ROOT / "static").glob("*.js")), ids=lambda path: path.name)
def test_our_scripts_do_not_eval(script):
    text = script.read_text(encoding="utf-8")
    assert not re.search(r"\beval\(|new Function\(|setTimeout\(\s*[\"']|setInterval\(\s*[\"']", text)


def test_htmx_is_told_not_to_eval_run_scripts_or_inject_styles():
    script = (ROOT / "static" / "parley.js").read_text(encoding="utf-8")
    for setting in ("allowEval = false", "allowScriptTags = false", "includeIndicatorStyles = false"):
        assert f"htmx.config.{setting};" in script
    assert ".htmx-request .htmx-indicator" in (ROOT / "static" / "parley.css").read_text(encoding="utf-8")


def test_the_admin_and_a_logged_in_page_render_without_inline_scripts(client, admin, conversation):
    """Rendered HTML, not only our templates: includes, partials and Django's admin."""
    client.force_login(admin)
    for path in ("/", f"/c/{conversation.pk}/", "/admin/", "/admin/inbox/channel/", "/admin/inbox/operator/add/"):
        html = client.get(path).content.decode()
        inline = [tag for tag in re.findall(r"<script\b[^>]*>", html) if "src=" not in tag and "json" not in tag]
        assert not inline, (path, inline)
        assert not re.search(r"\son(click|load|submit|change|input|error)\s*=", html), path
