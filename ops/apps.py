from __future__ import annotations

from django.apps import AppConfig


class OpsConfig(AppConfig):
    """What someone running Parley watches: /metrics, /healthz/deep, request ids, ``doctor``."""

    name = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        # Imported here, once the models are loaded (receivers import them).
        from axes.signals import user_locked_out
        from celery.signals import before_task_publish, task_postrun, task_prerun, task_success
        from django.contrib.auth.signals import user_login_failed
        from django.db.models.signals import post_save

        from bot.models import BotDecision
        from inbox import signals
        from ops import periodic, receivers, requestid

        signals.webhook_answered.connect(receivers.webhook_answered, dispatch_uid="ops-webhooks")
        signals.message_sent.connect(receivers.message_sent, dispatch_uid="ops-delivery")
        post_save.connect(receivers.bot_decision_saved, sender=BotDecision, dispatch_uid="ops-bot-decisions")
        user_login_failed.connect(receivers.login_failed, dispatch_uid="ops-login-failed")
        user_locked_out.connect(receivers.locked_out, dispatch_uid="ops-locked-out")
        before_task_publish.connect(requestid.add_to_task, weak=False, dispatch_uid="ops-request-id-publish")
        task_prerun.connect(requestid.restore_for_task, weak=False, dispatch_uid="ops-request-id-prerun")
        task_postrun.connect(requestid.clear_after_task, weak=False, dispatch_uid="ops-request-id-postrun")
        task_success.connect(periodic.record_success, weak=False, dispatch_uid="ops-periodic")
