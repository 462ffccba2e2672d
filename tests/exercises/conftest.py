"""Fixtures shared by the exercise tests: one untrained MobileVLM at the course's sizes."""

import pytest
import torch

from mobilevlm_mini.config import VLMConfig
from mobilevlm_mini.model import MobileVLM


@pytest.fixture(scope="session")
def vlm() -> MobileVLM:
    torch.manual_seed(0)
    return MobileVLM(VLMConfig()).eval()  # untrained, at the course's sizes
