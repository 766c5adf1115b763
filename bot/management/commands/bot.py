"""``manage.py bot calibrate | ask TEXT | status``: the bot's operating points and a way to try it."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from bot import knowledge
from bot.calibration import Targets
from bot.encoders import FALLBACK_ENCODER, build_encoder, configured_spec, get_encoder
from bot.models import Article, Calibration, ExampleQuestion, KnownOutOfScope


class Command(BaseCommand):
    help = "Calibrate the bot from the knowledge base, ask it a question, or show its state."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        calibrate = sub.add_parser(
            "calibrate",
            help="Compute thresholds per encoder and language from held-out example questions and known out-of-scope messages.",
        )
        calibrate.add_argument(
            "--encoder", default="", help="encoder spec (default: BOT_ENCODER, then the fallback too)"
        )
        calibrate.add_argument("--folds", type=int, default=5)
        calibrate.add_argument("--precision", type=float, default=Targets.precision)
        calibrate.add_argument("--oos-handed-off", type=float, default=Targets.oos_handed_off)
        calibrate.add_argument("--oos-share", type=float, default=Targets.oos_share)
        calibrate.add_argument("--min-in-scope", type=int, default=20, help="held-out examples a language needs")
        calibrate.add_argument("--min-oos", type=int, default=10, help="known out-of-scope messages a language needs")
        ask = sub.add_parser("ask", help="Show what the bot would do with a message.")
        ask.add_argument("text")
        ask.add_argument("--channel", type=int, default=None)
        sub.add_parser("status", help="Encoder, knowledge base and latest calibrations.")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "calibrate":
            self._calibrate(options)
        elif action == "ask":
            verdict = knowledge.triage_text(text=options["text"], channel_id=options["channel"])
            self._emit(verdict.as_log())
        else:
            encoder = get_encoder()
            self._emit(
                {
                    "configured": configured_spec(),
                    "encoder": encoder.name,
                    # The cheap first stage, when BOT_CASCADE allows one and the encoder has parts;
                    # it decides only for languages whose calibration stored its cut-offs.
                    "cascade": knowledge.cascade_enabled() and len(getattr(encoder, "parts", ())) > 1,
                    "articles": Article.objects.active().count(),
                    "example_questions": ExampleQuestion.objects.count(),
                    "known_out_of_scope": KnownOutOfScope.objects.count(),
                    "calibrations": [
                        str(c) for c in Calibration.objects.filter(encoder=encoder.name).order_by("-computed_at")[:10]
                    ],
                }
            )

    def _calibrate(self, options: dict[str, Any]) -> None:
        targets = Targets(
            precision=options["precision"], oos_handed_off=options["oos_handed_off"], oos_share=options["oos_share"]
        )
        if options["encoder"]:
            encoders = [build_encoder(options["encoder"])]
        else:
            # The configured encoder (or the fallback it fell back to), and the fallback as well, so
            # that a machine where the model will not load still has an operating point.
            encoders = [get_encoder()]
            if encoders[0].name != build_encoder(FALLBACK_ENCODER).name:
                encoders.append(build_encoder(FALLBACK_ENCODER))
        for encoder in encoders:
            records = knowledge.calibrate(
                encoder=encoder,
                targets=targets,
                folds=options["folds"],
                min_in_scope=options["min_in_scope"],
                min_out_of_scope=options["min_oos"],
            )
            for record in records:
                self._emit(
                    {
                        "encoder": record.encoder,
                        "language": record.language,
                        "threshold": round(record.threshold, 4),
                        "margin": round(record.margin, 4),
                        **record.stats,
                    }
                )

    def _emit(self, payload: dict[str, Any]) -> None:
        self.stdout.write(json.dumps(payload, ensure_ascii=False, default=str))
