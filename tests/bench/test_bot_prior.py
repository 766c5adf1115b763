"""Learning the shipped prior (bench.bot_prior): out-of-scope shares pooled over every language's knowledge bases."""

from __future__ import annotations

from bench.bot_prior import robust_point
from bot.calibration import Sample


def knowledge_base(*, near_misses: int, n_oos: int = 20) -> list[Sample]:
    """120 in-scope questions (right, 0.2-0.8) and ``n_oos`` out-of-scope ones: ``near_misses`` at 0.6, the rest at 0.02."""
    rows = [Sample(0.2 + 0.6 * i / 119, 0.0, True, True) for i in range(120)]
    rows += [Sample(0.02, 0.0, False, False) for _ in range(n_oos - near_misses)]
    rows += [Sample(0.6, 0.0, False, False) for _ in range(near_misses)]
    return rows


def test_two_near_misses_among_a_languages_own_20_out_of_scope_messages_set_its_point() -> None:
    own = [knowledge_base(near_misses=2) for _ in range(6)]

    point = robust_point(own)

    assert point is not None
    assert point["threshold"] > 0.6, "among its own 20, two messages are 10 % of out-of-scope traffic"
    assert point["learned"]["out_of_scope"] == "own"


def test_pooled_out_of_scope_messages_of_every_language_weigh_those_near_misses_as_two_of_many() -> None:
    own = [knowledge_base(near_misses=2) for _ in range(6)]
    others = [knowledge_base(near_misses=0, n_oos=100) for _ in range(18)]

    point = robust_point(own, [*own, *others])

    assert point is not None
    assert point["threshold"] < 0.6
    assert point["learned"]["in_scope_answered_right"] > robust_point(own)["learned"]["in_scope_answered_right"]
    assert point["learned"]["out_of_scope"] == "every language"
