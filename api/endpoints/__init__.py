"""The API's resources, one router per module, mounted by :mod:`api.main`."""

from __future__ import annotations
