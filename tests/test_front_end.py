"""The front end's layout: one stylesheet whose page rules stay on their pages, and the scripts that
templates/base.html loads, deferred, in the order that puts htmx's settings first."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "static"
TEMPLATES = ROOT / "templates"
BASE = (TEMPLATES / "base.html").read_text(encoding="utf-8")

# The operator UI's scripts, in the order base.html must load them (parley.js sets htmx's config
# and window.Parley, which the others use; htmx and its ws extension come first).
SCRIPTS = [
    "vendor/htmx.min.js",
    "vendor/htmx-ext-ws.js",
    "parley.js",
    "live.js",
    "thread.js",
    "keyboard.js",
    "saved-replies.js",
    "notifications.js",
]


def test_static_holds_one_stylesheet_linked_once_from_base_and_nowhere_else():
    assert sorted(path.name for path in STATIC.glob("*.css")) == ["parley.css"]
    assert BASE.count('rel="stylesheet"') == 1
    assert "{% static 'parley.css' %}" in BASE
    others = [
        str(path.relative_to(TEMPLATES))
        for path in TEMPLATES.rglob("*.html")
        if path != TEMPLATES / "base.html" and 'rel="stylesheet"' in path.read_text(encoding="utf-8")
    ]
    # The API's docs page is Swagger UI's own standalone page, with Swagger UI's vendored stylesheet;
    # the survey's answer page is a customer's, outside the operator UI: the same parley.css, without
    # the operators' scripts and top bar that base.html brings.
    assert sorted(others) == ["api/docs.html", "desk/csat_answer.html"]
    assert "{% static 'parley.css' %}" in (TEMPLATES / "desk" / "csat_answer.html").read_text(encoding="utf-8")


def test_the_log_in_page_gets_the_stylesheet_through_base():
    assert (
        (TEMPLATES / "registration" / "login.html").read_text(encoding="utf-8").startswith('{% extends "base.html" %}')
    )


def test_base_loads_every_script_deferred_in_order_with_htmxs_settings_first():
    loaded = re.findall(r"<script src=\"\{% static '([^']+)' %\}\"( defer)?></script>", BASE)
    assert [name for name, _ in loaded] == SCRIPTS
    assert all(defer for _, defer in loaded), "all deferred: they run in document order before DOMContentLoaded"
    assert BASE.index("parley.js") < BASE.index("</head>"), "in <head>: before the phone's deferred scripts in <body>"
    ours = {path.name for path in STATIC.glob("*.js")} - {"twilio-voice.js"}  # the phone loads its own
    assert ours == {name for name in SCRIPTS if "/" not in name}


def test_only_parley_js_configures_htmx():
    configuring = sorted(
        path.name for path in STATIC.glob("*.js") if "htmx.config." in path.read_text(encoding="utf-8")
    )
    assert configuring == ["parley.js"]


def rules_after(css: str, marker: str) -> list[str]:
    """The selectors of every rule after ``marker`` (comments dropped, @media unwrapped)."""
    css = re.sub(r"/\*.*?\*/", "", css[css.index(marker) :], flags=re.DOTALL)
    css = re.sub(r"@media[^{]*\{", "", css)
    return [selector.strip() for block in re.findall(r"([^{}]+)\{[^{}]*\}", css) for selector in block.split(",")]


def test_the_pages_rules_are_scoped_to_their_pages_and_weigh_no_more_than_before():
    """Sections 7 and 8 style the pages built on <div class="page">: nothing there may reach the
    inbox or log in, which give .badge, .muted, .medium and button.primary their own look."""
    css = (STATIC / "parley.css").read_text(encoding="utf-8")
    selectors = rules_after(css, "/* == 7. Pages")
    assert len(selectors) > 100
    unscoped = [
        s for s in selectors if not re.match(r"(:where\(\.[a-z-]+(\.[a-z-]+)?\) |\.page\b|\.saved-reply-page )", s)
    ]
    assert unscoped == []
    # Every page that the sections style carries its scope class.
    for scope in set(re.findall(r":where\((\.[a-z.-]+)\)", css)):
        classes = scope.strip(".").split(".")
        pattern = r'class="[^"]*' + r"[^\"]*".join(rf"\b{name}\b" for name in classes)
        assert any(re.search(pattern, path.read_text(encoding="utf-8")) for path in TEMPLATES.rglob("*.html")), scope
