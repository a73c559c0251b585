"""Writes tests/fixtures/hf/bitnet-b158/: a tiny Hugging Face BitNet b1.58 checkpoint as
transformers stores one (every linear weight ternary, packed four to a byte along the
rows by transformers' own `pack_weights`, with a bf16 `weight_scale` that `BitLinear`
divides its output by), its config.json, and (outside the checkpoint directory) a truth file:

- `<weight>`: the dequantized weight, transformers' own `unpack_weights(packed, bf16)`
  divided by `weight_scale` in bf16 (the weight `BitLinear` computes with);
- `x` and `<weight>.y`: a random activation row and `BitLinear.forward(x)` run by
  transformers in f32 (int8 activations, the packed weight, the scale).

Needs torch and transformers 4.48 (the last release whose bitnet integration imports
with torch 1.x): Debian's python3-torch plus `pip install transformers==4.48.3
safetensors` in a venv with system site packages. Not part of `cargo xtask fixtures`
(CI has no torch); run it by hand:

    python xtask/python/gen_bitnet_hf.py tests/fixtures/hf/bitnet-b158 tests/fixtures/bitnet/hf_b158_truth.safetensors
"""
import json
import os
import sys

import torch

if not hasattr(torch, "compile"):  # torch 1.x: transformers decorates with torch.compile
    torch.compile = lambda f=None, **k: (f if f is not None else (lambda g: g))

import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers.integrations.bitnet import BitLinear, pack_weights, unpack_weights  # noqa: E402

out_dir, truth_path = sys.argv[1], sys.argv[2]
os.makedirs(out_dir, exist_ok=True)
os.makedirs(os.path.dirname(truth_path), exist_ok=True)
torch.manual_seed(158)

hidden, inter, heads, kv_heads, vocab = 256, 512, 4, 2, 512
head_dim = hidden // heads
shapes = {
    "self_attn.q_proj": (heads * head_dim, hidden),
    "self_attn.k_proj": (kv_heads * head_dim, hidden),
    "self_attn.v_proj": (kv_heads * head_dim, hidden),
    "self_attn.o_proj": (hidden, heads * head_dim),
    "mlp.gate_proj": (inter, hidden),
    "mlp.up_proj": (inter, hidden),
    "mlp.down_proj": (hidden, inter),
}

tensors, truth = {}, {}
tensors["model.embed_tokens.weight"] = (torch.randn(vocab, hidden) * 0.02).to(torch.bfloat16)
for norm, dim in [
    ("input_layernorm", hidden),
    ("post_attention_layernorm", hidden),
    ("self_attn.attn_sub_norm", hidden),
    ("mlp.ffn_sub_norm", inter),
]:
    tensors[f"model.layers.0.{norm}.weight"] = (1 + 0.1 * torch.randn(dim)).to(torch.bfloat16)
tensors["model.norm.weight"] = torch.ones(hidden, dtype=torch.bfloat16)

for module, (rows, cols) in shapes.items():
    name = f"model.layers.0.{module}"
    w = torch.randn(rows, cols) * 0.02
    if module == "mlp.down_proj":
        w[:, :7] *= 30  # a few large columns, so that many codes are 0
    # BitNet b1.58's absmean: s = 1 / mean|W|, codes = round(W·s) clamped to ±1;
    # BitLinear's output is divided by weight_scale, so weight_scale = s.
    s = 1.0 / w.abs().mean().clamp(min=1e-5)
    codes = (w * s).round().clamp(-1, 1)
    packed = pack_weights(codes.clone())
    assert packed.dtype == torch.uint8 and packed.shape == (rows // 4, cols)
    scale = s.reshape(1).to(torch.bfloat16)
    tensors[f"{name}.weight"] = packed
    tensors[f"{name}.weight_scale"] = scale
    # The library's own unpacking, divided by the scale in the model dtype.
    unpacked = unpack_weights(packed, dtype=torch.bfloat16)
    assert torch.equal(unpacked.float(), codes)
    truth[f"{name}.weight"] = unpacked / scale  # bf16, as BitLinear computes
    # BitLinear's forward in f32 on one activation row.
    layer = BitLinear(cols, rows, bias=False, device="cpu", dtype=torch.float32)
    layer.weight.copy_(packed)
    layer.weight_scale.copy_(scale.float())
    x = torch.randn(1, cols)
    if module == "mlp.down_proj":
        x[0, 3] = 25.0  # an outlier token value
    with torch.no_grad():
        truth[f"{name}.weight.y"] = layer(x).reshape(-1).float()
    truth[f"{name}.weight.x"] = x.reshape(-1)

save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
save_file({k: v.contiguous() for k, v in truth.items()}, truth_path)
config = {
    "architectures": ["BitNetForCausalLM"],
    "model_type": "bitnet",
    "hidden_size": hidden,
    "intermediate_size": inter,
    "num_attention_heads": heads,
    "num_key_value_heads": kv_heads,
    "num_hidden_layers": 1,
    "vocab_size": vocab,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "quantization_config": {"quant_method": "bitnet", "modules_to_not_convert": None},
}
with open(os.path.join(out_dir, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
    f.write("\n")
with open(os.path.join(out_dir, "README.md"), "w") as f:
    f.write(
        "A tiny BitNet b1.58 checkpoint as transformers stores one, written by\n"
        f"`xtask/python/gen_bitnet_hf.py` with transformers {transformers.__version__} and torch\n"
        f"{torch.__version__}: packed with transformers' `pack_weights`; `../../bitnet/hf_b158_truth.safetensors`\n"
        "holds "
        "transformers' `unpack_weights` divided by `weight_scale` (in bf16) and BitLinear's\n"
        "f32 forward on one activation row per weight (`<weight>.x` → `<weight>.y`).\n"
    )
print(f"wrote {out_dir} with transformers {transformers.__version__}, torch {torch.__version__}")
