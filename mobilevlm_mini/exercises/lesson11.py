"""Checkers for lesson 11, video frames and a resampler."""

from __future__ import annotations

from typing import Any

from mobilevlm_mini.exercises._checking import NotYet, _call, _close, _given, _number, checker
from mobilevlm_mini.video import every_kth_frame


@checker
def check_11_exercise_1(segment_frames: Any) -> str:
    """Lesson 11, exercise 1: segment-centre frame indices floor((i + 1/2) T / n), on hidden clip lengths."""
    for num_frames in (8, 16, 10, 5, 1):
        for n in range(1, num_frames + 1):
            got = _call(segment_frames, "segment_frames", num_frames, n)
            want = [(2 * i + 1) * num_frames // (2 * n) for i in range(n)]
            try:
                got = [int(t) for t in got]
            except (TypeError, ValueError):
                raise NotYet(f"`segment_frames` should return a list of frame indices, got {got!r}") from None
            if got != want:
                raise NotYet(f"segment_frames({num_frames}, {n}) = {got} is not the middle frame of each of {n} equal "
                             f"segments of a {num_frames}-frame clip: frame floor((i + 1/2) T / n) for i = 0 ... n - 1")
    return "segment centres stay inside the clip: which events they miss, and why, is discussed in the solution"


def _visible(clip: Any, kept: list[int]) -> bool:
    """A clip's event shows when one kept frame is before the change and one at or after it."""
    return min(kept) < clip.change_at <= max(kept)


@checker
def check_11_exercise_2(test_clips: Any, visible_8: Any, long_clips: Any, visible_16: Any) -> str:
    """Lesson 11, exercise 2: share of clips whose event is visible in every 4th frame, per start, for 8- and 16-frame
    clips."""
    for name, clips, T, answers, answer_name in (("test_clips", test_clips, 8, visible_8, "visible_8"),
                                                 ("long_clips", long_clips, 16, visible_16, "visible_16")):
        if not _given(clips, name) or any(clip.num_frames != T for clip in clips):
            raise NotYet(f"`{name}` should be clips of {T} "
                         "frames" + (": make them with VideoConfig(num_frames=16)" if T == 16 else ""))
        missing = [start for start in range(4) if start not in _given(answers, answer_name)]
        if missing:
            raise NotYet(f"`{answer_name}` has no share yet for start = {missing}")
        for start in range(4):
            kept = every_kth_frame(T, 4, start)
            want = sum(_visible(clip, kept) for clip in clips) / len(clips)
            if not _close(_number(answers[start], f"{answer_name}[{start}]"), want, 1e-6):
                raise NotYet(f"{answer_name}[{start}] is not the share of `{name}` whose change is visible in every "
                             f"4th frame from {start}: a change at frame c shows when a kept frame is before c and "
                             "another at or after c")
    return "the span of the kept frames, not the start, decides how many events a fixed frame rate sees"
