"""Lesson 12's exercise checkers: pass on the solution's answers, fail helpfully on wrong or unfinished ones."""

import torch

from mobilevlm_mini import exercises as ex
from mobilevlm_mini.data import shapes_tokenizer
from mobilevlm_mini.hf import config_from_hf, export_llama
from mobilevlm_mini.language import MobileLlama, count_parameters, kv_cache_bytes, preset

from .helpers import fails, passes


def test_12_exercise_2(capsys):
    tinyllama = {"model_type": "llama", "vocab_size": 32000, "hidden_size": 2048, "intermediate_size": 5632,
                 "num_hidden_layers": 22, "num_attention_heads": 32, "num_key_value_heads": 4, "rms_norm_eps": 1e-5}
    config = config_from_hf(tinyllama)  # the solution's
    passes(capsys, ex.check_12_exercise_2(config, count_parameters(config), kv_cache_bytes(config, 2048)))
    no_gqa = config_from_hf({**tinyllama, "num_key_value_heads": 32})
    fails(capsys, ex.check_12_exercise_2(config, count_parameters(config), kv_cache_bytes(no_gqa, 2048)),
          "32 key/value heads")
    fails(capsys, ex.check_12_exercise_2(no_gqa, count_parameters(no_gqa), kv_cache_bytes(no_gqa, 2048)),
          "`config` differs")
    fails(capsys, ex.check_12_exercise_2(config, count_parameters(no_gqa), kv_cache_bytes(config, 2048)), "`params`",
          hidden=(f"{count_parameters(config):,}", str(count_parameters(config))))
    fails(capsys,
          ex.check_12_exercise_2(config, count_parameters(config), kv_cache_bytes(config, 2048, bytes_per_value=4)),
          "fp16")
    fails(capsys, ex.check_12_exercise_2(tinyllama, 1, 1), "should be what config_from_hf")


def test_12_exercise_4(capsys, tmp_path):
    big = preset("mobilellama-1.4b")
    # the solution's
    saved = count_parameters(big) - count_parameters(preset("mobilellama-1.4b", tie_word_embeddings=True))
    vocab = shapes_tokenizer().vocab_size
    torch.manual_seed(0)
    tiny_tied = MobileLlama(preset("tiny", vocab_size=vocab, tie_word_embeddings=True)).eval()
    folder = export_llama(tiny_tied, tmp_path / "tied")
    passes(capsys, ex.check_12_exercise_4(saved, tiny_tied, folder))
    fails(capsys, ex.check_12_exercise_4(2 * saved, tiny_tied, folder), "in fp16 bytes")
    fails(capsys, ex.check_12_exercise_4(saved + 1, tiny_tied, folder), "compare count_parameters")
    untied = MobileLlama(preset("tiny", vocab_size=vocab)).eval()
    fails(capsys, ex.check_12_exercise_4(saved, untied, folder), "tie_word_embeddings=True")
    fails(capsys, ex.check_12_exercise_4(saved, tiny_tied, export_llama(untied, tmp_path / "untied")),
          "no lm_head.weight")
    fails(capsys, ex.check_12_exercise_4(saved, tiny_tied, tmp_path / "nowhere"), "no model.safetensors")
