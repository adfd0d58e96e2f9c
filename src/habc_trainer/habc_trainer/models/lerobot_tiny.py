"""A tiny random-init SmolVLA, written to disk without the hub: for tests and a first try.

``write_tiny_smolvla(dir)`` writes ``dir/vlm`` (a SmolVLM config with 2 text layers of width
64 and a 1-layer vision tower, a character-level tokenizer with SmolVLM's special tokens, its
processor) and ``dir/policy/config.json`` (a SmolVLA config pointing at that VLM), about 0.25 M
parameters. ``model_overrides: {lerobot: <dir>/policy, cameras: [top], image_size: 64}``
then trains it; a real run points ``lerobot`` at a LeRobot checkpoint such as smolvla_base.
"""

from __future__ import annotations

from pathlib import Path

# SmolVLM's tokens for images; the processor and SmolVLA look them up by these names.
SPECIAL = {
    "fake_image_token": "<fake_token_around_image>",
    "image_token": "<image>",
    "global_image_token": "<global-img>",
    "end_of_utterance_token": "<end_of_utterance>",
}
EOS = "<|endoftext|>"


def write_tiny_vlm(out: Path, image_size: int = 64) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        PreTrainedTokenizerFast,
        SmolVLMConfig,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )

    out.mkdir(parents=True, exist_ok=True)
    tiles = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    chars = [chr(i) for i in range(32, 127)] + ["\n"]
    vocab = {t: i for i, t in enumerate([EOS, *SPECIAL.values(), *tiles, *chars])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=EOS))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        pad_token=EOS,
        unk_token=EOS,
        extra_special_tokens=SPECIAL,
    )
    config = SmolVLMConfig(
        text_config={
            "model_type": "llama",
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "vocab_size": len(vocab),
            "max_position_embeddings": 512,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": 16,
        },
        scale_factor=2,
        image_token_id=vocab[SPECIAL["image_token"]],
    )
    config.save_pretrained(out)
    size = {"longest_edge": image_size}
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(
            size=size, max_image_size=size, do_image_splitting=False
        ),
        video_processor=SmolVLMVideoProcessor(size=size, max_image_size=size),
        tokenizer=tokenizer,
        image_seq_len=4,
    )
    processor.save_pretrained(out)
    return out


def write_tiny_smolvla(out: Path, horizon: int = 10, image_size: int = 64) -> Path:
    """Write the tiny VLM and a SmolVLA config on it; returns the policy directory."""
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig

    vlm = write_tiny_vlm(Path(out) / "vlm", image_size)
    cfg = SmolVLAConfig(
        vlm_model_name=str(vlm),
        load_vlm_weights=False,  # random init: nothing to download
        chunk_size=horizon,
        n_action_steps=horizon,
        max_state_dim=32,
        max_action_dim=32,
        resize_imgs_with_padding=(image_size, image_size),
        num_steps=2,
        tokenizer_max_length=24,
        device="cpu",
    )
    policy_dir = Path(out) / "policy"
    policy_dir.mkdir(parents=True, exist_ok=True)
    cfg._save_pretrained(policy_dir)  # config.json, as from_pretrained reads it
    return policy_dir
