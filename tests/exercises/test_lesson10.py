"""Lesson 10's exercise checkers: pass on the solution's answers, fail helpfully on wrong or unfinished ones."""

from mobilevlm_mini import exercises as ex
from mobilevlm_mini.bench import bytes_per_token
from mobilevlm_mini.language import count_parameters, kv_cache_bytes, preset

from .helpers import fails, passes


def test_10_exercise_2(capsys, vlm):
    llm = vlm.llm
    weights_tiny = bytes_per_token(llm, 0)  # the solution's
    per_position_tiny = bytes_per_token(llm, 1) - weights_tiny
    real = preset("mobilellama-1.4b")
    weights_real, per_position_real = count_parameters(real) * 4 / 8, kv_cache_bytes(real, 1)
    tiny, full = weights_tiny / per_position_tiny, weights_real / per_position_real
    passes(capsys, ex.check_10_exercise_2(llm, tiny, full))
    passes(capsys, ex.check_10_exercise_2(llm, int(tiny), round(full)))
    fails(capsys, ex.check_10_exercise_2(llm, 2 * tiny, full), "`tiny_positions`", "fp32")
    fails(capsys, ex.check_10_exercise_2(llm, tiny, 4 * full), "half a byte")
    fails(capsys, ex.check_10_exercise_2(llm, tiny, full / 2), "fp16 (2 bytes a value)")
    fails(capsys, ex.check_10_exercise_2(llm, tiny, 3 * full), "`real_positions`", hidden=(f"{full:.0f}",))
