"""Choice labels read fast: what the models of the hot pages share."""

from __future__ import annotations

import functools
from typing import Any

from django.db import models
from django.utils.encoding import force_str
from django.utils.hashable import make_hashable


class ChoiceLabels:
    """``get_FOO_display()`` from a table of labels built once a field, not once a call.

    Django's own builds a dict of the field's choices on every call, hashing every lazy label on the
    way: one ``gettext`` a choice. A thread page asks for some 300 labels (a message's direction and
    status, a channel's medium, a row's status), so that was about 1 500 ``gettext`` calls and a
    tenth of the page's rendering. The table keeps the lazy labels, so a label is still read in the
    active language. Choices given as a callable would be read once: no model here has them.

    Django binds ``get_FOO_display`` to ``cls._get_FIELD_display`` when the field is added to the
    class, so a model takes this by listing the mixin before ``models.Model``.
    """

    def _get_FIELD_display(self, field: models.Field[Any, Any]) -> Any:
        value = getattr(self, field.attname)
        return force_str(_labels(field).get(make_hashable(value), value), strings_only=True)


@functools.cache
def _labels(field: models.Field[Any, Any]) -> dict[Any, Any]:
    return dict(make_hashable(field.flatchoices))
