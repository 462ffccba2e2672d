"""Real checkpoints: our MobileLLaMA in Hugging Face's Llama format, and the real models' names and sizes (lesson 12).

`MobileLlama` names every parameter as transformers' `LlamaForCausalLM` does and `MobileLlamaConfig`
uses `LlamaConfig`'s field names (language.py), so moving weights across is a one-to-one renaming
(LLAMA_NAME_TABLE) and a config.json:

    export_llama(model, folder)   folder/config.json + folder/model.safetensors
    transformers.LlamaForCausalLM.from_pretrained(folder)   loads it (transformers: the `hf` extra)
    import_llama(folder)          our MobileLlama again, every tensor bit-identical

The real models, without downloading them:
- `config_from_hf(data)` maps a Llama config.json (MOBILELLAMA_HF_CONFIGS holds MobileLLaMA's) onto ours;
  `skeleton(config)` builds the model on the meta device (shapes, no memory) to count its parameters;
  `weight_bytes(n, precision)` is what those weights take in fp32 / fp16 / int8 / int4.
- `mobilevlm_projector_names(projector)` maps our ldp / ldpv2 parameters onto the `model.mm_projector.*`
  names of the official MobileVLM code (github.com/Meituan-AutoML/MobileVLM,
  mobilevlm/model/vision_projector.py); `load_mobilevlm_projector` loads weights saved under those names.

Nothing here imports transformers or reaches the network.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mobilevlm_mini.checkpoint import CONFIG, WEIGHTS, _atomic_write, config_to_dict
from mobilevlm_mini.language import MobileLlama, MobileLlamaConfig
from mobilevlm_mini.projectors import Projector
from mobilevlm_mini.tokenizer import SPECIAL_TOKENS

# ---------------------------------------------------------------- our MobileLLaMA <-> Hugging Face Llama

# (our name, transformers' LlamaForCausalLM name, shape, role); {i} is the layer index.
# The two names are equal by design: the table says so once, and export / import go through it.
LLAMA_NAME_TABLE: tuple[tuple[str, str, str, str], ...] = (
    ("model.embed_tokens.weight", "model.embed_tokens.weight", "(vocab, hidden)", "token embeddings"),
    ("model.layers.{i}.input_layernorm.weight", "model.layers.{i}.input_layernorm.weight",
     "(hidden,)", "RMSNorm before attention"),
    ("model.layers.{i}.self_attn.q_proj.weight", "model.layers.{i}.self_attn.q_proj.weight",
     "(heads * head_dim, hidden)", "queries"),
    ("model.layers.{i}.self_attn.k_proj.weight", "model.layers.{i}.self_attn.k_proj.weight",
     "(kv_heads * head_dim, hidden)", "keys"),
    ("model.layers.{i}.self_attn.v_proj.weight", "model.layers.{i}.self_attn.v_proj.weight",
     "(kv_heads * head_dim, hidden)", "values"),
    ("model.layers.{i}.self_attn.o_proj.weight", "model.layers.{i}.self_attn.o_proj.weight",
     "(hidden, heads * head_dim)", "attention output"),
    ("model.layers.{i}.post_attention_layernorm.weight", "model.layers.{i}.post_attention_layernorm.weight",
     "(hidden,)", "RMSNorm before the MLP"),
    ("model.layers.{i}.mlp.gate_proj.weight", "model.layers.{i}.mlp.gate_proj.weight",
     "(intermediate, hidden)", "SwiGLU gate"),
    ("model.layers.{i}.mlp.up_proj.weight", "model.layers.{i}.mlp.up_proj.weight",
     "(intermediate, hidden)", "SwiGLU up"),
    ("model.layers.{i}.mlp.down_proj.weight", "model.layers.{i}.mlp.down_proj.weight",
     "(hidden, intermediate)", "SwiGLU down"),
    ("model.norm.weight", "model.norm.weight", "(hidden,)", "final RMSNorm"),
    ("lm_head.weight", "lm_head.weight", "(vocab, hidden)", "output head (not stored when tied to the embeddings)"),
)


def llama_names(config: MobileLlamaConfig) -> dict[str, str]:
    """Our parameter name -> transformers' name, for every tensor a checkpoint of `config` stores."""
    names = {}
    for ours, theirs, _, _ in LLAMA_NAME_TABLE:
        layers = range(config.num_hidden_layers) if "{i}" in ours else [None]
        names.update({ours.format(i=i): theirs.format(i=i) for i in layers})
    if config.tie_word_embeddings:  # transformers stores the shared matrix once, as the embeddings
        del names["lm_head.weight"]
    return names


def hf_config(config: MobileLlamaConfig, dtype: torch.dtype = torch.float32) -> dict:
    """The config.json transformers reads: our fields (already LlamaConfig's names) plus the choices LLaMA fixes."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        **config_to_dict(config),
        "head_dim": config.head_dim,
        "hidden_act": "silu",  # SwiGLU's gate
        "attention_bias": False,
        "mlp_bias": False,
        "pad_token_id": SPECIAL_TOKENS.index("<pad>"),
        "bos_token_id": SPECIAL_TOKENS.index("<bos>"),
        "eos_token_id": SPECIAL_TOKENS.index("<eos>"),
        "torch_dtype": str(dtype).removeprefix("torch."),
    }


def export_llama(model: MobileLlama, directory: str | Path, dtype: torch.dtype = torch.float32) -> Path:
    """Write `model` as a Hugging Face Llama checkpoint: directory/config.json + directory/model.safetensors."""
    names = llama_names(model.config)
    state = model.state_dict()
    unmapped = sorted(set(state) - set(names) - {"lm_head.weight"})  # a tied lm_head is the embedding matrix
    if unmapped:
        raise ValueError(f"parameters {unmapped} have no row in LLAMA_NAME_TABLE; add them before exporting")
    tensors = {theirs: state[ours].detach().to(dtype).contiguous() for ours, theirs in names.items()}
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(hf_config(model.config, dtype), indent=2)
    _atomic_write(directory / WEIGHTS, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    _atomic_write(directory / CONFIG, lambda tmp: Path(tmp).write_text(text))
    return directory


def config_from_hf(data: dict) -> MobileLlamaConfig:
    """Our config from a Llama config.json dict (transformers 4 or 5 layout); a ValueError names what we cannot
    build."""
    if data.get("model_type") not in ("llama", "mobilevlm"):
        raise ValueError(
            f"model_type {data.get('model_type')!r} is not a Llama; "
            f"expected 'llama' (or 'mobilevlm', a Llama with a projector)"
        )
    required = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
    missing = [key for key in required if key not in data]
    if missing:
        raise ValueError(f"the config lacks {missing}; a Llama config.json has all of {list(required)}")
    # transformers 5 keeps rope_theta in rope_parameters
    rope = data.get("rope_parameters") or data.get("rope_scaling") or {}
    fixed = {"hidden_act": "silu", "attention_bias": False, "mlp_bias": False}
    bad = {key: data[key] for key, wanted in fixed.items() if data.get(key, wanted) != wanted}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        bad["rope_type"] = rope.get("rope_type", rope.get("type"))
    if data.get("head_dim") not in (None, data["hidden_size"] // data["num_attention_heads"]):
        bad["head_dim"] = data["head_dim"]
    if bad:
        raise ValueError(
            f"our MobileLlama cannot express {bad}: it has a SwiGLU (silu) MLP, no biases, plain RoPE "
            "and head_dim = hidden_size / num_attention_heads"
        )
    return MobileLlamaConfig(
        **{key: data[key] for key in required},
        num_key_value_heads=data.get("num_key_value_heads") or data["num_attention_heads"],
        max_position_embeddings=data.get("max_position_embeddings", 2048),
        rms_norm_eps=data.get("rms_norm_eps", 1e-6),
        rope_theta=float(rope.get("rope_theta", data.get("rope_theta", 10000.0))),
        tie_word_embeddings=data.get("tie_word_embeddings", False),
        initializer_range=data.get("initializer_range", 0.02),
    )


def import_llama(directory: str | Path) -> MobileLlama:
    """Our MobileLlama from a Hugging Face Llama checkpoint folder (config.json + model.safetensors)."""
    directory = Path(directory)
    for name in (CONFIG, WEIGHTS):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"no {name} in {directory}: "
                                    f"expected a Llama checkpoint folder (config.json + model.safetensors)")
    config = config_from_hf(json.loads((directory / CONFIG).read_text()))
    tensors = load_file(directory / WEIGHTS)
    names = llama_names(config)
    missing = sorted(theirs for theirs in names.values() if theirs not in tensors)
    if missing:
        raise ValueError(f"{directory / WEIGHTS} lacks {missing[:4]}{' ...' if len(missing) > 4 else ''} "
                         f"({len(missing)} tensors)")
    state = {ours: tensors[theirs] for ours, theirs in names.items()}
    if config.tie_word_embeddings:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    model = MobileLlama(config)
    model.load_state_dict(state)
    return model.eval()


# ---------------------------------------------------------------- real sizes without real weights

# Architecture fields of MobileLLaMA's published config.json files (huggingface.co/mtgv/MobileLLaMA-1.4B-Base
# and -2.7B-Base), typed in here so that nothing is downloaded; fields they leave out take LlamaConfig's defaults.
MOBILELLAMA_HF_CONFIGS: dict[str, dict] = {
    "mtgv/MobileLLaMA-1.4B-Base": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "vocab_size": 32000, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 24,
        "num_attention_heads": 16, "num_key_value_heads": 16, "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-6, "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
    },
    "mtgv/MobileLLaMA-2.7B-Base": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "vocab_size": 32000, "hidden_size": 2560, "intermediate_size": 6912, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 32, "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-6, "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
    },
}

BITS_PER_WEIGHT = {"fp32": 32, "fp16": 16, "bf16": 16, "int8": 8, "int4": 4}


def skeleton(config: MobileLlamaConfig) -> MobileLlama:
    """The model built on the meta device: every parameter has its shape and dtype, none has memory or values."""
    with torch.device("meta"):
        return MobileLlama(config)


def weight_bytes(num_parameters: int, precision: str) -> int:
    """Bytes the weights take at a precision of BITS_PER_WEIGHT (weights only: no quantization scales, KV cache or
    activations)."""
    if precision not in BITS_PER_WEIGHT:
        raise ValueError(f"unknown precision {precision!r}; expected one of {list(BITS_PER_WEIGHT)}")
    return num_parameters * BITS_PER_WEIGHT[precision] // 8


# ---------------------------------------------------------------- MobileVLM's projector names

# Our projector's module -> the official module, under `model.mm_projector.` (.weight / .bias carried over).
# ldpnet   = LDPNetProjector.model = LDPBlock: mlp = Sequential(Identity, Linear, GELU, Linear) and
#            mb_block = Sequential(Identity, InvertedResidual(stride 1), InvertedResidual(stride 2)), where
#            torchvision's InvertedResidual.block = [Conv2d + LayerNorm (+ Hardswish), SqueezeExcitation,
#            Conv2d + LayerNorm].
# ldpnetv2 = LDPNetV2Projector: mlp.mlp = Sequential(Linear, GELU, Linear), dwn = 2-D pooling (no weights),
#            peg.peg = Sequential(depthwise Conv2d), added back to its input.
_INVERTED_RESIDUAL = (
    ("depthwise", "block.0.0"), ("norm1", "block.0.1"), ("se.fc1", "block.1.fc1"), ("se.fc2", "block.1.fc2"),
    ("pointwise", "block.2.0"), ("norm2", "block.2.1"),
)
MOBILEVLM_PROJECTOR_NAMES: dict[str, dict[str, str]] = {
    "ldp": {
        "mlp.fc1": "model.mlp.1",
        "mlp.fc2": "model.mlp.3",
        **{f"block{b}.{ours}": f"model.mb_block.{b}.{theirs}" for b in (1, 2) for ours, theirs in _INVERTED_RESIDUAL},
    },
    "ldpv2": {"mlp.fc1": "mlp.mlp.0", "mlp.fc2": "mlp.mlp.2", "peg": "peg.peg.0"},
}
MOBILEVLM_PROJECTOR_TYPES = {"ldp": "ldpnet", "ldpv2": "ldpnetv2"}  # our name -> config.mm_projector_type
MM_PROJECTOR_PREFIX = "model.mm_projector."  # where MobileLlamaForCausalLM keeps it (inside the LlamaModel)


def mobilevlm_projector_names(projector: Projector) -> dict[str, str]:
    """Our parameter name -> its name in an official MobileVLM checkpoint, for every parameter of an ldp / ldpv2."""
    if projector.name not in MOBILEVLM_PROJECTOR_NAMES:
        raise ValueError(f"MobileVLM has no {projector.name!r} projector; "
                         f"expected one of {sorted(MOBILEVLM_PROJECTOR_NAMES)}")
    table = MOBILEVLM_PROJECTOR_NAMES[projector.name]
    names = {}
    for name in projector.state_dict():
        module, kind = name.rsplit(".", 1)  # e.g. "block1.se.fc1", "weight"
        if module not in table:
            raise ValueError(f"parameter {name!r} has no row in MOBILEVLM_PROJECTOR_NAMES[{projector.name!r}]")
        names[name] = f"{MM_PROJECTOR_PREFIX}{table[module]}.{kind}"
    return names


def load_mobilevlm_projector(projector: Projector, state_dict: dict[str, torch.Tensor]) -> Projector:
    """Load weights stored under official MobileVLM names (other keys, e.g. the LLM's, are ignored) into our
    projector."""
    names = mobilevlm_projector_names(projector)
    missing = sorted(theirs for theirs in names.values() if theirs not in state_dict)
    if missing:
        kind = MOBILEVLM_PROJECTOR_TYPES[projector.name]
        raise ValueError(f"the state dict lacks {missing}; "
                         f"expected the `{MM_PROJECTOR_PREFIX}*` weights of a {kind} projector")
    projector.load_state_dict({ours: state_dict[theirs] for ours, theirs in names.items()})
    return projector
