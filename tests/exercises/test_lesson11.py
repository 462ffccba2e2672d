"""Lesson 11's exercise checkers: pass on the solution's answers, fail helpfully on wrong or unfinished ones."""

import dataclasses

from mobilevlm_mini import exercises as ex
from mobilevlm_mini.video import VideoConfig, every_kth_frame, make_clips

from .helpers import fails, passes


def test_11_exercise_1(capsys):
    def segment_frames(num_frames, n):  # the solution's
        return [int((i + 0.5) * num_frames / n) for i in range(n)]

    passes(capsys, ex.check_11_exercise_1(segment_frames))
    fails(capsys, ex.check_11_exercise_1(lambda num_frames, n: [round((i + 0.5) * num_frames / n) for i in range(n)]),
          "segment_frames(8, 3)", "floor")
    fails(capsys,
          ex.check_11_exercise_1(lambda num_frames, n: [round(i * (num_frames - 1) / max(1, n - 1)) for i in range(n)]),
          "segment_frames(8, 1)")
    fails(capsys, ex.check_11_exercise_1(lambda num_frames, n: "0 4"), "a list of frame indices")


def test_11_exercise_2(capsys):
    config = VideoConfig(kinds=("move", "colour"))
    test_clips = make_clips(6, seed=3_000, config=config)
    long_clips = make_clips(6, seed=3_000, config=dataclasses.replace(config, num_frames=16))

    def visible_fraction(kept, clips):  # the solution's
        return sum(min(kept) < clip.change_at <= max(kept) for clip in clips) / len(clips)

    visible_8 = {start: visible_fraction(every_kth_frame(8, 4, start), test_clips) for start in range(4)}
    visible_16 = {start: visible_fraction(every_kth_frame(16, 4, start), long_clips) for start in range(4)}
    passes(capsys, ex.check_11_exercise_2(test_clips, visible_8, long_clips, visible_16))
    fails(capsys, ex.check_11_exercise_2(test_clips, visible_8, test_clips, visible_16),
          "clips of 16 frames", "num_frames=16")
    with_last = {start: visible_fraction(every_kth_frame(8, 4, start) + [8 - 1], test_clips) for start in range(4)}
    assert with_last[0] != visible_8[0]  # keeping the last frame too sees more changes
    fails(capsys, ex.check_11_exercise_2(test_clips, with_last, long_clips, visible_16),
          "visible_8[0]", "every 4th frame from 0")
    at_or_before = {start: sum(min(k) <= c.change_at <= max(k)
                               for c in long_clips for k in [every_kth_frame(16, 4, start)]) / 6
                    for start in range(4)}
    fails(capsys, ex.check_11_exercise_2(test_clips, visible_8, long_clips, at_or_before), "visible_16[")
    fails(capsys, ex.check_11_exercise_2(test_clips, {0: 0.5}, long_clips, visible_16),
          "no share yet for start = [1, 2, 3]")
