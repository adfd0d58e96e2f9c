"""Tiny random-init LeRobot VLAs, written to disk without the hub: for tests and a first try.

``write_tiny(dir, kind)`` writes a policy directory and returns it; ``model_overrides:
{lerobot: <that dir>, cameras: [top], image_size: 64}`` then trains it; a real run points
``lerobot`` at a LeRobot checkpoint (smolvla_base, pi0_base, pi05_base) instead.

``smolvla`` (the default, ``write_tiny_smolvla``): ``dir/vlm`` (a SmolVLM config with 2 text
layers of width 64 and a 1-layer vision tower, a character-level tokenizer with SmolVLM's special
tokens, its processor) and ``dir/policy/config.json`` (a SmolVLA config pointing at that VLM),
about 0.25 M parameters. Nothing is patched: SmolVLA takes its VLM's sizes from that config.

``pi0`` / ``pi05`` (``write_tiny_pi``): ``dir/policy`` holds LeRobot's own ``config.json``
(PI0Config / PI05Config, 64 px images, the default variants), ``habc_tiny.json`` (``TINY_SPEC``:
the sizes below) and ``tokenizer/`` (a character-level tokenizer with PaliGemma's pad / eos /
bos ids: PaliGemma's own is on the hub). LeRobot builds pi0 and pi0.5 only at the two real sizes
(``get_gemma_config`` knows ``gemma_300m`` and ``gemma_2b``; ``PaliGemmaWithExpertModel``
hard-codes SigLIP-So400m, a 2048-wide projector and the 257,152-token vocabulary: ~4 B
parameters), so ``tiny_pi_build`` patches, while the policy is built and only then, three names
in ``lerobot.policies.pi0.modeling_pi0`` and ``lerobot.policies.pi05.modeling_pi05``:

- ``get_gemma_config``: ``gemma_2b`` (the VLM) and ``gemma_300m`` (the action expert) return the
  spec's widths and depths;
- ``PaliGemmaForConditionalGenerationWithPiGemma``: LeRobot's class, built after the spec's
  vision tower (width, depth, heads, patch), vocabulary and a projector onto the VLM's width
  are written into the config LeRobot made;
- ``PiGemmaForCausalLM``: LeRobot's class on the spec's vocabulary.

Everything else (the joint attention of VLM and expert, the flow loss, sampling, state and
time embeddings, save / load) is LeRobot's code unchanged. ``LeRobotPolicy`` enters
``tiny_pi_build`` only for a directory holding ``habc_tiny.json``; a real checkpoint never
passes through it. LeRobot's joint attention reshapes to 8 heads, so both Gemmas keep 8 heads
(of width 8): the tiny pi0 has 0.15 M parameters, the tiny pi0.5 0.16 M.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("smolvla", "pi0", "pi05")
TINY_SPEC = "habc_tiny.json"
# LeRobot's joint attention of VLM and expert reshapes to 8 heads (modeling_pi0.py,
# compute_layer_complete: ``1 * 8 * head_dim``): the tiny Gemmas keep 8 heads.
PI_HEADS = 8

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


# --- pi0 / pi0.5 ---
@dataclass(frozen=True)
class GemmaSize:
    """One Gemma's sizes, the fields of LeRobot's ``modeling_pi0.GemmaConfig``."""

    width: int
    depth: int
    mlp_dim: int
    num_heads: int = PI_HEADS
    num_kv_heads: int = 1
    head_dim: int = 8


@dataclass(frozen=True)
class TinyPi:
    """What ``tiny_pi_build`` builds a pi0 / pi0.5 with (``habc_tiny.json``)."""

    vocab_size: int
    vlm: GemmaSize = GemmaSize(width=64, depth=2, mlp_dim=128)
    expert: GemmaSize = GemmaSize(width=32, depth=2, mlp_dim=64)
    # SigLIP: 64 px images in 16 px patches give 16 image tokens per camera.
    vision: dict[str, int] = field(
        default_factory=lambda: {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "patch_size": 16,
        }
    )

    def __post_init__(self) -> None:
        if self.vlm.num_heads != PI_HEADS or self.expert.num_heads != PI_HEADS:
            raise ValueError(
                f"num_heads: vlm {self.vlm.num_heads}, expert {self.expert.num_heads}; "
                f"LeRobot's joint attention is written for {PI_HEADS}"
            )
        for name in ("depth", "num_kv_heads", "head_dim"):
            if getattr(self.vlm, name) != getattr(self.expert, name):
                raise ValueError(f"{name}: the VLM and the expert attend jointly; must be equal")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, path: Path) -> TinyPi:
        d = json.loads(Path(path).read_text())
        return cls(
            vocab_size=d["vocab_size"],
            vlm=GemmaSize(**d["vlm"]),
            expert=GemmaSize(**d["expert"]),
            vision=d["vision"],
        )


def write_tiny_pi_tokenizer(out: Path) -> int:
    """A character-level tokenizer with PaliGemma's pad 0 / eos 1 / bos 2 (a BOS first, as
    PaliGemma's); returns its vocabulary size."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    chars = [chr(i) for i in range(32, 127)] + ["\n"]
    vocab = {t: i for i, t in enumerate([*specials, *chars])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>"
    )
    tokenizer.unk_token = "<unk>"
    tokenizer.save_pretrained(out)
    return len(vocab)


def write_tiny_pi(out: Path, kind: str = "pi0", horizon: int = 10, image_size: int = 64) -> Path:
    """Write a tiny pi0 / pi0.5 (config.json, habc_tiny.json, tokenizer/); returns its dir."""
    from lerobot.policies.pi0.configuration_pi0 import PI0Config
    from lerobot.policies.pi05.configuration_pi05 import PI05Config

    from habc_trainer.models.lerobot_policy import TOKENIZER_DIR

    configs = {"pi0": (PI0Config, 24), "pi05": (PI05Config, 160)}
    if kind not in configs:
        raise ValueError(f"kind {kind!r}: a tiny pi is one of {sorted(configs)}")
    config_cls, max_tokens = configs[kind]  # pi0.5's prompt also holds the state's bins
    policy_dir = Path(out) / "policy"
    policy_dir.mkdir(parents=True, exist_ok=True)
    vocab = write_tiny_pi_tokenizer(policy_dir / TOKENIZER_DIR)
    (policy_dir / TINY_SPEC).write_text(TinyPi(vocab_size=vocab).to_json())
    cfg = config_cls(
        chunk_size=horizon,
        n_action_steps=horizon,
        max_state_dim=32,
        max_action_dim=32,
        image_resolution=(image_size, image_size),
        num_inference_steps=2,
        tokenizer_max_length=max_tokens,
        dtype="float32",
        device="cpu",
    )
    cfg._save_pretrained(policy_dir)  # config.json, as from_pretrained reads it
    return policy_dir


@contextlib.contextmanager
def tiny_pi_build(spec_path: Path) -> Iterator[TinyPi]:
    """While open, LeRobot builds pi0 / pi0.5 at the sizes in ``spec_path`` (module docstring)."""
    from unittest import mock

    from lerobot.policies.pi0 import modeling_pi0
    from lerobot.policies.pi05 import modeling_pi05

    spec = TinyPi.from_json(spec_path)
    sizes = {"gemma_2b": spec.vlm, "gemma_300m": spec.expert}
    built: set[str] = set()

    def stand_ins(module: Any) -> dict[str, Any]:
        paligemma = module.PaliGemmaForConditionalGenerationWithPiGemma
        expert = module.PiGemmaForCausalLM

        def gemma_config(variant: str) -> Any:
            if variant not in sizes:
                raise ValueError(f"variant {variant!r}: a tiny pi knows {sorted(sizes)}")
            built.add("gemma_config")
            return module.GemmaConfig(**dataclasses.asdict(sizes[variant]))

        def build_paligemma(config: Any) -> Any:
            config.text_config.vocab_size = spec.vocab_size
            for name, value in spec.vision.items():
                setattr(config.vision_config, name, value)
            config.vision_config.projection_dim = config.text_config.hidden_size
            built.add("paligemma")
            return paligemma(config=config)

        def build_expert(config: Any) -> Any:
            config.vocab_size = spec.vocab_size
            built.add("expert")
            return expert(config=config)

        return {
            "get_gemma_config": gemma_config,
            "PaliGemmaForConditionalGenerationWithPiGemma": build_paligemma,
            "PiGemmaForCausalLM": build_expert,
        }

    with contextlib.ExitStack() as stack:
        for module in (modeling_pi0, modeling_pi05):
            for name, stand_in in stand_ins(module).items():
                stack.enter_context(mock.patch.object(module, name, stand_in))
        yield spec
    missing = {"gemma_config", "paligemma", "expert"} - built
    if missing:
        raise RuntimeError(
            f"{spec_path}: the policy was built without the tiny {sorted(missing)}; LeRobot's "
            "pi0 / pi0.5 construction changed, update lerobot_tiny.tiny_pi_build"
        )


def write_tiny(out: Path, kind: str = "smolvla", horizon: int = 10, image_size: int = 64) -> Path:
    """A tiny random-init LeRobot policy of ``kind`` (``KINDS``) under ``out``; its dir."""
    if kind == "smolvla":
        return write_tiny_smolvla(out, horizon, image_size)
    if kind in KINDS:
        return write_tiny_pi(out, kind, horizon, image_size)
    raise ValueError(f"--type {kind!r}: one of {list(KINDS)}")


def main(argv: list[str] | None = None) -> int:
    from habc_core.cli import ArgumentParser, user_errors

    with user_errors("lerobot_tiny"):
        p = ArgumentParser(prog="python -m habc_trainer.models.lerobot_tiny")
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--type", choices=KINDS, default="smolvla")
        p.add_argument("--horizon", type=int, default=10)
        p.add_argument("--image-size", type=int, default=64)
        args = p.parse_args(argv)
        print(write_tiny(args.out, args.type, args.horizon, args.image_size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
