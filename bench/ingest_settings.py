"""Settings for ``bench.ingest``'s web process: the product's, plus one trivial view to compare with."""

from __future__ import annotations

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.ingest_urls"
