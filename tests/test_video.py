"""Video clips, frame sampling and the multi-frame VLM (mobilevlm_mini.video)."""

import numpy as np
import pytest
import torch

from mobilevlm_mini.config import StageConfig
from mobilevlm_mini.data import draw_scene
from mobilevlm_mini.runtime import seed_everything
from mobilevlm_mini.video import (
    MOVES,
    VIDEO_KINDS,
    ClipFeatures,
    FrameTokens,
    VideoConfig,
    VideoVLM,
    encode_clips,
    every_kth_frame,
    make_clip,
    make_clips,
    predict_video,
    train_video,
    uniform_frames,
    video_accuracy,
    video_batch,
    video_vlm_config,
)


@pytest.fixture(scope="module")
def clips():
    return make_clips(12, seed=5)


def small_model(strategy: str) -> VideoVLM:
    seed_everything(0)
    return VideoVLM(video_vlm_config(strategy, num_hidden_layers=1))


def test_clips_are_deterministic_from_the_seed():
    a, b, c = make_clip(3, 7), make_clip(3, 7), make_clip(4, 7)
    assert (np.array_equal(a.frames, b.frames)
            and (a.question, a.answer, a.change_at) == (b.question, b.answer, b.change_at))
    assert not np.array_equal(a.frames, c.frames)


def test_a_clip_shows_one_change_at_change_at(clips):
    for clip in clips:
        frames = clip.frames
        assert frames.shape == (8, 48, 48, 3) and frames.dtype == np.uint8
        assert 1 <= clip.change_at <= 7
        assert all(np.array_equal(f, frames[0]) for f in frames[: clip.change_at])
        assert all(np.array_equal(f, frames[-1]) for f in frames[clip.change_at :])
        assert not np.array_equal(frames[0], frames[-1])
        redrawn = draw_scene(clip.objects[1], rng=np.random.default_rng(clip.background))
        assert np.array_equal(redrawn, clip.states[1])


def test_answers_follow_from_the_scenes():
    for i in range(30):
        clip = make_clip(1, i)
        before, after = clip.objects
        if clip.kind == "move":
            (dr, dc) = MOVES[clip.answer]
            assert (after[0].row - before[0].row, after[0].col - before[0].col) == (dr, dc)
            assert sum(o.shape == before[0].shape for o in before) == 1
        elif clip.kind == "colour":
            assert after[0].colour == clip.answer != before[0].colour
            assert sum(o.shape == before[0].shape for o in after) >= 2  # a twin: the last frame alone is ambiguous
        else:
            assert clip.answer == after[-1].name and len(after) == len(before) + 1 >= 2


def test_kinds_can_be_restricted():
    config = VideoConfig(kinds=("move",), num_frames=5)
    assert {make_clip(0, i, config).kind for i in range(10)} == {"move"}
    assert make_clip(0, 0, config).num_frames == 5


def test_frame_sampling_indices():
    assert uniform_frames(8, 1) == [3]
    assert uniform_frames(8, 2) == [0, 7]
    assert uniform_frames(8, 4) == [0, 2, 5, 7]
    assert uniform_frames(8, 8) == list(range(8))
    assert every_kth_frame(8, 2) == [0, 2, 4, 6]
    assert every_kth_frame(8, 4) == [0, 4]
    assert every_kth_frame(8, 3, start=1) == [1, 4, 7]
    assert every_kth_frame(8, 8) == [0]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: uniform_frames(8, 0), "n=0"),
        (lambda: uniform_frames(8, 9), "n=9"),
        (lambda: every_kth_frame(8, 0), "got 0"),
        (lambda: every_kth_frame(8, 2, start=8), "got 8"),
        (lambda: VideoConfig(num_frames=1), "got 1"),
        (lambda: VideoConfig(kinds=("jump",)), "jump"),
        (lambda: VideoConfig(max_others=7), "got 7"),
        (lambda: make_clips(0), "got 0"),
        (lambda: video_vlm_config("stack"), "stack"),
        (lambda: video_accuracy([]), "no records"),
        (lambda: VideoVLM(video_vlm_config("concat", factor=4)), "divisible by 4"),
    ],
)
def test_bad_input_raises_a_value_error_naming_it(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_token_counts_per_strategy(clips):
    concat, resampler = small_model("concat"), small_model("resampler")
    data = encode_clips(concat, clips)
    assert data.states.shape == (2 * len(clips), 36, 64) and data.index.shape == (len(clips), 8)
    rows = torch.arange(3)
    for n in (1, 2, 4, 8):
        frames = data.frames(rows, uniform_frames(8, n))
        assert concat.project(frames).shape == (3, n, 128) and concat.num_video_tokens(n) == n
        assert resampler.project(frames).shape == (3, 4, 128) and resampler.num_video_tokens(n) == 4
        ids, frames, mask, labels = video_batch(concat, data, clips, rows, uniform_frames(8, n))
        out = concat(ids, frames, mask, labels)
        # K = n placeholders
        assert out.logits.shape[1] == ids.shape[1] and (ids == concat.tokenizer.image_id).sum(dim=1).eq(n).all()
    with pytest.raises(ValueError, match="n_frames"):
        concat.num_video_tokens(0)


def test_frame_times_matter_and_bad_frames_are_refused(clips):
    model = small_model("resampler")
    data = encode_clips(model, clips)
    rows = torch.arange(2)
    tokens = data.frames(rows, [0, 7]).tokens
    swapped = FrameTokens(tokens, torch.tensor([[7, 0], [7, 0]]))
    assert not torch.allclose(model.project(FrameTokens(tokens, torch.tensor([[0, 7], [0, 7]]))),
                              model.project(swapped))
    with pytest.raises(ValueError, match="9"):
        model.project(FrameTokens(tokens, torch.tensor([[0, 9], [0, 9]])))
    with pytest.raises(ValueError, match="FrameTokens"):
        model.project(tokens)
    with pytest.raises(ValueError, match="times"):
        FrameTokens(tokens, torch.zeros(2, 3, dtype=torch.long))


def test_features_are_gathered_per_frame(clips):
    model = small_model("concat")
    data = encode_clips(model, clips)
    clip = clips[4]
    direct = model.encode_images(torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float() / 255)
    assert torch.allclose(data.frames(torch.tensor([4]), list(range(8))).tokens[0], direct, atol=1e-5)


def test_training_lowers_the_loss_and_is_repeatable(clips):
    def run():
        model = small_model("concat")
        data = encode_clips(model, clips)
        history = train_video(model, data, clips, StageConfig(steps=12, batch_size=6, lr=3e-3, warmup=2), seed=1,
                              first_last_steps=4, progress=False)
        return model, data, history

    (model, data, first), (_, _, second) = run(), run()
    assert first["loss"] == second["loss"]
    assert first["frames"][:4] == [2] * 4
    assert np.mean(first["loss"][-3:]) < np.mean(first["loss"][:3])
    with pytest.raises(ValueError, match="first_last_steps"):
        train_video(model, data, clips, StageConfig(steps=2), first_last_steps=3, progress=False)
    records = predict_video(model, data, clips, uniform_frames(8, 2))
    assert len(records) == len(clips) and set(video_accuracy(records)) <= {"all", *VIDEO_KINDS}


def test_feature_store_is_consistent():
    states = torch.arange(4.0)[:, None, None].expand(4, 2, 3)
    data = ClipFeatures(states, torch.tensor([[0, 0, 1], [2, 3, 3]]))
    frames = data.frames(torch.tensor([1, 0]), [0, 2])
    assert frames.tokens[:, :, 0, 0].tolist() == [[2.0, 3.0], [0.0, 1.0]] and frames.times.tolist() == [[0, 2], [0, 2]]
