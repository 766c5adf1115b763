"""Tell an operator's open sockets when what they may see changes.

A socket joins its groups (the operator's teams, staff) when it connects. When an operator's teams,
staff flag or ``is_active`` change, or the operator is deleted, these receivers publish
``inbox.access`` to the operator's own group after the transaction commits; every socket of the
operator, in any web process, then re-reads the operator and leaves the groups they lost, joins the
ones they gained, re-checks the conversation it shows, or closes when the operator may no longer
sign in (see :meth:`inbox.realtime.consumers.OperatorConsumer.inbox_access`).

Receivers rather than a service, because these fields are changed by Django's admin and
``manage.py`` as well as by our code. Connected in :meth:`inbox.apps.InboxConfig.ready`.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver

from inbox.models import Operator, Team
from inbox.realtime import publish

# The fields of an operator that decide what their sockets may receive.
ACCESS_FIELDS = ("is_active", "is_staff", "is_superuser")


def _publish(operator_id: int) -> None:
    transaction.on_commit(lambda: publish.access_changed(operator_id))


@receiver(pre_save, sender=Operator, dispatch_uid="access-operator-before-save")
def _remember_access(sender: type[Operator], instance: Operator, **kwargs: Any) -> None:
    update_fields = kwargs.get("update_fields")
    if instance.pk is None or (update_fields is not None and not set(update_fields) & set(ACCESS_FIELDS)):
        return  # a new operator has no socket; presence or last_login saves do not touch access
    instance._access_before = (  # type: ignore[attr-defined]  # read once, by the post_save below
        Operator.objects.filter(pk=instance.pk).values_list(*ACCESS_FIELDS).first()
    )


@receiver(post_save, sender=Operator, dispatch_uid="access-operator-saved")
def _operator_saved(sender: type[Operator], instance: Operator, created: bool, **kwargs: Any) -> None:
    before = instance.__dict__.pop("_access_before", None)
    if created or before is None:
        return
    if tuple(getattr(instance, name) for name in ACCESS_FIELDS) != tuple(before):
        _publish(instance.pk)


@receiver(post_delete, sender=Operator, dispatch_uid="access-operator-deleted")
def _operator_deleted(sender: type[Operator], instance: Operator, **kwargs: Any) -> None:
    _publish(instance.pk)


@receiver(m2m_changed, sender=Operator.teams.through, dispatch_uid="access-operator-teams")
def _teams_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    if action not in {"post_add", "post_remove", "post_clear"}:
        return
    if action != "post_clear" and not pk_set:
        return  # added teams the operator already had: nothing changed
    if not reverse:
        # operator.teams.add(team) / .remove() / .clear() / .set()
        _publish(instance.pk)
        return
    # team.operators.add(operator) / .remove(): pk_set holds the operators (None after a clear,
    # whose operators pre_clear could not pass on: we read them before it, below).
    operator_ids = pk_set if pk_set is not None else instance.__dict__.pop("_operators_before_clear", set())
    for operator_id in operator_ids:
        _publish(operator_id)


@receiver(m2m_changed, sender=Operator.teams.through, dispatch_uid="access-team-before-clear")
def _team_before_clear(sender: Any, instance: Any, action: str, reverse: bool, **kwargs: Any) -> None:
    if action == "pre_clear" and reverse:
        instance._operators_before_clear = set(instance.operators.values_list("pk", flat=True))


@receiver(pre_delete, sender=Team, dispatch_uid="access-team-deleted")
def _team_deleted(sender: type[Team], instance: Team, **kwargs: Any) -> None:
    # Deleting a team removes its memberships without m2m_changed.
    for operator_id in instance.operators.values_list("pk", flat=True):
        _publish(operator_id)
