"""The shared optimisation: schedule, AdamW settings, one clipped step, state round trip."""

import math

import pytest
import torch
from torch import nn

from mobilevlm_mini.optim import OptimConfig, Optimizer, lr_factor


def test_lr_warms_up_then_decays_to_its_floor():
    assert lr_factor(0, 10, 100, 0.1) == pytest.approx(0.1 * (0.1 + 0.9 * 1.0), rel=1e-3)
    assert lr_factor(9, 10, 100, 0.1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.09)))
    assert lr_factor(100, 10, 100, 0.1) == pytest.approx(0.1) and lr_factor(500, 10, 100, 0.1) == pytest.approx(0.1)
    assert all(lr_factor(s, 10, 100, 0.1) >= lr_factor(s + 1, 10, 100, 0.1) for s in range(10, 100))
    assert lr_factor(100, 10, 100, 0.0) == pytest.approx(0.0, abs=1e-12)


def test_floor_zero_is_exactly_the_plain_cosine():
    """Bit for bit what `min(1, (s + 1) / warmup) * 0.5 * (1 + cos(pi s / steps))` gives, so old runs are reproduced."""
    for step in range(0, 31):
        assert lr_factor(step, 5, 30, 0.0) == min(1.0, (step + 1) / 5) * 0.5 * (1 + math.cos(math.pi * step / 30))
        assert lr_factor(step, 5, 30, 0.1) == (min(1.0, (step + 1) / 5)
                                               * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / 30))))


def test_config_refuses_bad_settings():
    with pytest.raises(ValueError, match="steps"):
        OptimConfig(lr=1e-3, steps=0, warmup=1, floor=0.1)
    with pytest.raises(ValueError, match="floor"):
        OptimConfig(lr=1e-3, steps=10, warmup=1, floor=1.5)


def test_step_clips_updates_and_schedules_and_state_round_trips():
    torch.manual_seed(0)
    layer = nn.Linear(4, 1)
    config = OptimConfig(lr=0.1, steps=4, warmup=2, floor=0.0, weight_decay=0.0, grad_clip=1e-3, betas=(0.9, 0.98))
    optimizer = Optimizer(layer.parameters(), config)
    assert optimizer.lr == pytest.approx(0.05)  # step 0 of a 2-step warm-up
    before = layer.weight.detach().clone()
    optimizer.step((layer(torch.randn(8, 4)) * 1000).pow(2).mean())
    assert optimizer.lr == pytest.approx(0.1 * lr_factor(1, 2, 4, 0.0))
    assert not torch.equal(before, layer.weight) and optimizer.adamw.param_groups[0]["betas"] == (0.9, 0.98)
    copy = Optimizer(layer.parameters(), config)
    copy.load_state_dict(optimizer.state_dict())
    assert copy.lr == optimizer.lr and copy.schedule.last_epoch == 1
