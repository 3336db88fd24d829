"""Build tiny, randomly initialised LeRobot policies, saved the way `lerobot-train` saves them.

Tests of embodia's LeRobot adapter build their policies with this script. It runs ONLY inside a
LeRobot 0.4.4 virtual environment (torch, transformers, the `smolvla` extra), needs no network
(run it with HF_HUB_OFFLINE=1) and takes seconds per policy on a CPU.

    python make_tiny_policies.py OUT_DIR [--types act,diffusion,smolvla,act_ensemble,xvla]
        [--image-size 96] [--state-dim 6] [--action-dim 6] [--cameras front,wrist]
        [--stats radians|degrees] [--seed 0]

For each type it writes OUT_DIR/<type>/ like a checkpoint's `pretrained_model` folder:
`policy.save_pretrained(folder)` (config.json, model.safetensors) plus the processors from
`make_pre_post_processors(policy.config, dataset_stats=...)` saved with `save_pretrained(folder)`
(policy_preprocessor.json, policy_postprocessor.json and their *_normalizer/unnormalizer
state .safetensors). `lerobot-train` also writes train_config.json (the whole TrainPipelineConfig,
dataset included); that file is not written here. The script then reloads every folder
(`get_policy_class(type).from_pretrained`, `make_pre_post_processors(cfg, pretrained_path=...)`),
runs one observation through preprocessor -> policy -> postprocessor, checks shape and finiteness,
and prints one JSON line per policy (folder, parameter count, build and verify seconds).

Types: `act`, `act_ensemble` (ACT with temporal_ensemble_coeff=0.01, n_action_steps=1),
`diffusion`, `smolvla`, `xvla`. act/act_ensemble/diffusion are checked through `select_action` where
`predict_action_chunk` alone does not work on a fresh policy: diffusion's `predict_action_chunk`
reads its observation queues (and the stacked `observation.images` key), which only
`select_action` fills; act_ensemble's chunk only makes sense through its temporal ensembler.

SmolVLA offline. LeRobot 0.4.4 reaches the VLM backbone named by `SmolVLAConfig.vlm_model_name`
(default HuggingFaceTB/SmolVLM2-500M-Video-Instruct) in three places, even with
`load_vlm_weights=False` (the default):
  1. policies/smolvla/smolvlm_with_expert.py, SmolVLMWithExpertModel.__init__:
     `AutoConfig.from_pretrained(model_id)` -> config.json (model_type "smolvlm"), then
     `SmolVLMForConditionalGeneration(config=config)` (random weights, no download);
  2. same function, `AutoProcessor.from_pretrained(model_id)` -> processor_config.json,
     preprocessor_config.json, video_preprocessor_config.json, tokenizer.json,
     tokenizer_config.json, special_tokens_map.json; modeling_smolvla.py (VLAFlowMatching.__init__)
     then reads `processor.tokenizer.fake_image_token_id` and `.global_image_token_id`, so the
     tokenizer needs those as `extra_special_tokens`; SmolVLMProcessor also needs `num2words`;
  3. processor_smolvla.py: `TokenizerProcessorStep(tokenizer_name=config.vlm_model_name)` calls
     `AutoTokenizer.from_pretrained(tokenizer_name)` when built and again when the saved
     policy_preprocessor.json (which stores tokenizer_name) is loaded.
All three are met by OUT_DIR/smolvla_backbone, made here: a SmolVLM config with a 2-layer, 64-wide
Llama text tower and a 1-layer, 32-wide vision tower on 32x32 images (patch 8), and a byte-level
BPE tokenizer (256 byte tokens, no merges, plus the SmolVLM special tokens) built with the
`tokenizers` library. The policy's config.json and policy_preprocessor.json name that folder by
its ABSOLUTE path, so OUT_DIR must not be moved after building (rebuild instead).

X-VLA offline. LeRobot 0.4.4 vendors Florence-2 (policies/xvla/modeling_florence2.py) and builds it
from `XVLAConfig.florence_config` (a dict: vision_config, text_config, projection_dim) with random
weights, no download. The one name it reaches is `XVLAConfig.tokenizer_name` (default
facebook/bart-large): processor_xvla.py's `TokenizerProcessorStep(tokenizer_name=...)` calls
`AutoTokenizer.from_pretrained` when built and when policy_preprocessor.json is loaded. That is met by
OUT_DIR/xvla_tokenizer, made here: a byte-level BPE tokenizer with BART's special tokens at BART's
ids (<s> 0, <pad> 1, </s> 2, <unk> 3, which Florence-2's text config expects), named by ABSOLUTE path
as above. The tiny Florence-2 has a four-stage DaViT (widths 8, 8, 16, 16, one block each) and a
one-layer, 32-wide BART encoder (the decoder is deleted by XVLAModel); the action transformer is one
32-wide block. Florence-2's `image_projection` is left uninitialised by LeRobot (`torch.empty`)
and is filled here with a truncated normal (std 0.02). `action_mode="auto"` makes the model pad actions to `max_action_dim` (20) inside and
trim them back to the dataset's action size, so the saved policy outputs `--action-dim` values per
step; X-VLA's default action mode `ee6d` always outputs 20 (xyz, 6D rotation, gripper, twice) and the
postprocessor does not trim them. XVLAConfig's default normalization is IDENTITY for images, state and
action, kept here as `lerobot-train` would keep it: the saved normalizer steps carry the stats but do
not change values, so `--stats` does not change an X-VLA policy's inputs or outputs.

pi0, pi05, pi0_fast and groot cannot be built offline with LeRobot 0.4.4 as installed; the exact steps
that stop each of them are in BLOCKERS.md beside this script.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from pathlib import Path

try:
    import numpy as np
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors
except ImportError as error:  # pragma: no cover - only meaningful outside the LeRobot venv
    sys.exit(f"make_tiny_policies.py must run inside the LeRobot 0.4.4 venv: {error}")

ALL_TYPES = ("act", "diffusion", "smolvla", "act_ensemble", "xvla")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SMOLVLM_SPECIAL_TOKENS = {
    "fake_image_token": "<fake_token_around_image>",
    "global_image_token": "<global-img>",
    "image_token": "<image>",
    "end_of_utterance_token": "<end_of_utterance>",
}
BACKBONE_IMAGE_SIZE = 32  # SmolVLA resizes (with padding) every camera to this before the vision tower
BACKBONE_PATCH_SIZE = 8
BART_SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>")  # ids 0..3, as in facebook/bart-large
XVLA_WIDTH = 32  # Florence-2 text width = image projection = the action transformer's input
XVLA_TEXT_TOKENS = 48
DAVIT_STRIDE = 32  # DaViT's four stages downsample by 4 * 2 * 2 * 2


# --------------------------------------------------------------------------- features and stats


def make_features(args) -> tuple[dict, dict]:
    """LeRobot input/output features for `args.cameras`, state and action sizes."""
    size = args.image_size
    inputs = {
        f"observation.images.{camera}": PolicyFeature(type=FeatureType.VISUAL, shape=(3, size, size))
        for camera in args.cameras
    }
    inputs["observation.state"] = PolicyFeature(type=FeatureType.STATE, shape=(args.state_dim,))
    outputs = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(args.action_dim,))}
    return inputs, outputs


def joint_stats(dim: int, units: str) -> dict[str, np.ndarray]:
    """Plausible SO-101 joint statistics; the last entry is the gripper, the others arm joints.

    radians: arm mean ~0, std 0.5, range +-2; gripper 0..1.7.
    degrees (LeRobot 0.4 convention): arm in degrees; gripper 0..100.
    """
    arm = {"mean": 0.0, "std": 0.5, "min": -2.0, "max": 2.0, "q01": -1.9, "q99": 1.9}
    grip = {"mean": 0.6, "std": 0.4, "min": 0.0, "max": 1.7, "q01": 0.02, "q99": 1.65}
    if units == "degrees":
        arm = {k: v * 180.0 / math.pi for k, v in arm.items()}
        grip = {"mean": 35.0, "std": 25.0, "min": 0.0, "max": 100.0, "q01": 1.0, "q99": 98.0}
    stats = {}
    for key in arm:
        values = [arm[key]] * (dim - 1) + [grip[key]]
        stats[key] = np.asarray(values, dtype=np.float32)
    return stats


def image_stats() -> dict[str, np.ndarray]:
    """ImageNet-like per-channel statistics, shaped (3, 1, 1) as LeRobot datasets store them."""

    def channel(values) -> np.ndarray:
        return np.asarray(values, dtype=np.float32).reshape(3, 1, 1)

    return {
        "mean": channel(IMAGENET_MEAN),
        "std": channel(IMAGENET_STD),
        "min": channel((0.0, 0.0, 0.0)),
        "max": channel((1.0, 1.0, 1.0)),
        "q01": channel((0.02, 0.02, 0.02)),
        "q99": channel((0.98, 0.98, 0.98)),
    }


def make_dataset_stats(args) -> dict[str, dict[str, np.ndarray]]:
    """Stats for every feature, numpy arrays like `LeRobotDataset.meta.stats`."""
    stats = {f"observation.images.{camera}": image_stats() for camera in args.cameras}
    stats["observation.state"] = joint_stats(args.state_dim, args.stats)
    stats["action"] = joint_stats(args.action_dim, args.stats)
    return stats


# --------------------------------------------------------------------------- policy configs


def act_config(inputs: dict, outputs: dict, ensemble: bool):
    from lerobot.policies.act.configuration_act import ACTConfig

    return ACTConfig(
        input_features=inputs,
        output_features=outputs,
        device="cpu",
        chunk_size=10,
        n_action_steps=1 if ensemble else 10,
        temporal_ensemble_coeff=0.01 if ensemble else None,
        vision_backbone="resnet18",
        pretrained_backbone_weights=None,
        dim_model=64,
        n_heads=2,
        dim_feedforward=128,
        n_encoder_layers=1,
        n_decoder_layers=1,
        n_vae_encoder_layers=1,
        latent_dim=8,
    )


def diffusion_config(inputs: dict, outputs: dict, image_size: int):
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig

    crop = image_size * 7 // 8  # centre crop at eval, random crop in training, as in the defaults
    return DiffusionConfig(
        input_features=inputs,
        output_features=outputs,
        device="cpu",
        n_obs_steps=2,
        horizon=16,
        n_action_steps=8,
        crop_shape=(crop, crop),
        pretrained_backbone_weights=None,
        use_group_norm=True,
        spatial_softmax_num_keypoints=16,
        down_dims=(32, 64),
        kernel_size=3,
        n_groups=8,
        diffusion_step_embed_dim=32,
        num_train_timesteps=100,
        num_inference_steps=5,
    )


def smolvla_config(inputs: dict, outputs: dict, backbone: Path):
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig

    return SmolVLAConfig(
        input_features=inputs,
        output_features=outputs,
        device="cpu",
        vlm_model_name=str(backbone.resolve()),
        load_vlm_weights=False,
        num_vlm_layers=2,  # all of the tiny text tower
        num_expert_layers=-1,
        self_attn_every_n_layers=2,
        expert_width_multiplier=0.75,
        resize_imgs_with_padding=(BACKBONE_IMAGE_SIZE, BACKBONE_IMAGE_SIZE),
        chunk_size=10,
        n_action_steps=10,
        num_steps=4,
        tokenizer_max_length=48,
    )


# --------------------------------------------------------------------------- SmolVLA backbone


def byte_level_bpe(specials: tuple[str, ...] = ()):
    """A `tokenizers` byte-level BPE without merges (any text encodes): `specials` first, then the
    256 byte tokens."""
    from tokenizers import Tokenizer, decoders, models
    from tokenizers.pre_tokenizers import ByteLevel

    vocab = {token: index for index, token in enumerate(specials)}
    for char in sorted(ByteLevel.alphabet()):
        vocab[char] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    return core


def make_tiny_tokenizer():
    """Byte-level BPE without merges (any text encodes) plus SmolVLM's special tokens."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=byte_level_bpe(),
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=list(SMOLVLM_SPECIAL_TOKENS.values()),
        extra_special_tokens=SMOLVLM_SPECIAL_TOKENS,  # gives .fake_image_token_id etc.
        model_input_names=["input_ids", "attention_mask"],
    )


def make_tiny_vlm_config(tokenizer):
    from transformers import SmolVLMConfig

    text = {
        "model_type": "llama",
        "vocab_size": 64 * math.ceil(len(tokenizer) / 64),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "max_position_embeddings": 512,
        "rms_norm_eps": 1e-5,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": BACKBONE_IMAGE_SIZE,
        "patch_size": BACKBONE_PATCH_SIZE,
    }
    return SmolVLMConfig(
        text_config=text,
        vision_config=vision,
        scale_factor=2,
        image_token_id=tokenizer.convert_tokens_to_ids(SMOLVLM_SPECIAL_TOKENS["image_token"]),
        pad_token_id=tokenizer.pad_token_id,
    )


def build_smolvla_backbone(folder: Path) -> Path:
    """Write a tiny SmolVLM config + processor + tokenizer that `from_pretrained` loads offline."""
    from transformers import SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor

    tokenizer = make_tiny_tokenizer()
    side = {"longest_edge": BACKBONE_IMAGE_SIZE}
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(size=side, max_image_size=side, do_image_splitting=False),
        tokenizer=tokenizer,
        video_processor=SmolVLMVideoProcessor(),
        image_seq_len=(BACKBONE_IMAGE_SIZE // BACKBONE_PATCH_SIZE // 2) ** 2,
    )
    folder.mkdir(parents=True, exist_ok=True)
    processor.save_pretrained(folder)  # processor, image/video processor and tokenizer files
    make_tiny_vlm_config(tokenizer).save_pretrained(folder)  # config.json (model_type smolvlm)
    return folder


# --------------------------------------------------------------------------- X-VLA


def build_xvla_tokenizer(folder: Path):
    """Write a BART-like tokenizer (BART's special tokens at BART's ids, text wrapped in <s> ... </s>)
    that `AutoTokenizer` loads."""
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    core = byte_level_bpe(BART_SPECIAL_TOKENS)
    core.post_processor = TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_input_names=["input_ids", "attention_mask"],
    )
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    return tokenizer


def xvla_florence_config(vocab_size: int, max_positions: int) -> dict:
    """A tiny Florence-2: four one-block DaViT stages and a one-layer BART encoder."""
    return {
        "vocab_size": vocab_size,
        "projection_dim": XVLA_WIDTH,  # read by XVLAModel as the action transformer's input size
        "vision_config": {
            "dim_embed": [8, 8, 16, 16],
            "num_heads": [1, 1, 2, 2],
            "num_groups": [1, 1, 2, 2],
            "depths": [1, 1, 1, 1],
            "window_size": 3,
            "drop_path_rate": 0.0,
            "projection_dim": XVLA_WIDTH,  # image tokens are concatenated with the text embeddings
            "image_pos_embed": {"type": "learned_abs_2d", "max_pos_embeddings": 64},  # up to 2048 px
        },
        "text_config": {
            "vocab_size": vocab_size,
            "d_model": XVLA_WIDTH,
            "encoder_layers": 1,
            "decoder_layers": 1,  # built, then deleted by XVLAModel
            "encoder_attention_heads": 2,
            "decoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "decoder_ffn_dim": 64,
            "max_position_embeddings": max_positions,
            "dropout": 0.0,
        },
    }


def xvla_config(inputs: dict, outputs: dict, args, tokenizer_folder: Path):
    from lerobot.policies.xvla.configuration_xvla import XVLAConfig

    tokenizer = build_xvla_tokenizer(tokenizer_folder)
    chunk = 10
    # Florence-2 gives each camera 1 + (size / 32)^2 tokens (a pooled token and the feature map);
    # the first camera's go through the BART encoder with the text, the others straight on to the
    # action transformer, whose sequence also holds the action chunk.
    side = math.ceil(args.image_size / DAVIT_STRIDE)
    per_camera = side * side + 1
    encoder_tokens = per_camera + XVLA_TEXT_TOKENS
    sequence = chunk + encoder_tokens + per_camera * (len(args.cameras) - 1)
    return XVLAConfig(
        input_features=inputs,
        output_features=outputs,
        device="cpu",
        florence_config=xvla_florence_config(
            vocab_size=64 * math.ceil(len(tokenizer) / 64),
            max_positions=64 * math.ceil(encoder_tokens / 64),
        ),
        tokenizer_name=str(tokenizer_folder.resolve()),
        tokenizer_max_length=XVLA_TEXT_TOKENS,
        hidden_size=XVLA_WIDTH,
        depth=1,
        num_heads=2,
        num_domains=1,  # XVLAAddDomainIdProcessorStep gives domain_id 0
        len_soft_prompts=4,
        max_len_seq=64 * math.ceil(sequence / 64),
        action_mode="auto",  # pad to max_action_dim inside, trim to the dataset's action size on output
        max_action_dim=max(20, args.action_dim),
        max_state_dim=max(32, args.state_dim),
        chunk_size=chunk,
        n_action_steps=chunk,
        num_denoising_steps=4,
    )


def init_xvla_image_projection(policy) -> None:
    """Fill Florence-2's `image_projection`. LeRobot creates it with `torch.empty` and no weight init
    touches it (modeling_florence2.py, `_build_image_projection_layers`); a checkpoint overwrites it,
    a fresh policy would save whatever memory held (not reproducible, not always finite)."""
    with torch.no_grad():
        torch.nn.init.trunc_normal_(policy.model.vlm.image_projection, std=0.02)


# --------------------------------------------------------------------------- build, save, verify


def make_config(policy_type: str, args, out_dir: Path):
    inputs, outputs = make_features(args)
    if policy_type in ("act", "act_ensemble"):
        return act_config(inputs, outputs, ensemble=policy_type == "act_ensemble")
    if policy_type == "diffusion":
        return diffusion_config(inputs, outputs, args.image_size)
    if policy_type == "smolvla":
        return smolvla_config(inputs, outputs, build_smolvla_backbone(out_dir / "smolvla_backbone"))
    if policy_type == "xvla":
        return xvla_config(inputs, outputs, args, out_dir / "xvla_tokenizer")
    raise ValueError(f"unknown policy type {policy_type!r}; choose from {', '.join(ALL_TYPES)}")


def build_and_save(policy_type: str, args, out_dir: Path) -> dict:
    """Build one policy with LeRobot's classes and save it like `lerobot-train` does."""
    started = time.perf_counter()
    torch.manual_seed(args.seed)
    config = make_config(policy_type, args, out_dir)
    policy = get_policy_class(config.type)(config)
    if policy_type == "xvla":
        init_xvla_image_projection(policy)
    preprocessor, postprocessor = make_pre_post_processors(config, dataset_stats=make_dataset_stats(args))
    folder = out_dir / policy_type
    policy.save_pretrained(folder)
    preprocessor.save_pretrained(folder)
    postprocessor.save_pretrained(folder)
    return {
        "type": policy_type,
        "policy_type": config.type,
        "folder": str(folder.resolve()),
        "parameters": sum(p.numel() for p in policy.parameters()),
        "build_seconds": round(time.perf_counter() - started, 2),
    }


def make_observation(args) -> dict:
    """One unbatched observation as a robot gives it: float32 images in [0, 1], (3, H, W)."""
    generator = torch.Generator().manual_seed(args.seed)
    size = args.image_size
    observation = {
        f"observation.images.{camera}": torch.rand(3, size, size, generator=generator)
        for camera in args.cameras
    }
    observation["observation.state"] = torch.randn(args.state_dim, generator=generator) * 0.3
    observation["task"] = "pick up the cube and place it in the bowl"
    return observation


def verify(record: dict, args) -> dict:
    """Reload the folder in this process and run one observation through it."""
    started = time.perf_counter()
    folder, policy_type = record["folder"], record["policy_type"]
    policy = get_policy_class(policy_type).from_pretrained(folder)
    preprocessor, postprocessor = make_pre_post_processors(
        policy.config,
        pretrained_path=folder,
        preprocessor_overrides={"device_processor": {"device": "cpu"}},
    )
    policy.reset()
    batch = preprocessor(make_observation(args))
    use_select = record["type"] in ("diffusion", "act_ensemble")
    with torch.no_grad():
        raw = policy.select_action(batch) if use_select else policy.predict_action_chunk(batch)
    action = postprocessor(raw)
    chunk = getattr(policy.config, "chunk_size", None) or policy.config.n_action_steps
    expected = (1, args.action_dim) if use_select else (1, chunk, args.action_dim)
    if tuple(action.shape) != expected or not torch.isfinite(action).all():
        raise AssertionError(f"{record['type']}: got {tuple(action.shape)}, expected {expected} and finite")
    record["verified_call"] = "select_action" if use_select else "predict_action_chunk"
    record["action_shape"] = list(action.shape)
    record["verify_seconds"] = round(time.perf_counter() - started, 2)
    return record


# --------------------------------------------------------------------------- command line


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--types", default=",".join(ALL_TYPES))
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--state-dim", type=int, default=6)
    parser.add_argument("--action-dim", type=int, default=6)
    parser.add_argument("--cameras", default="front,wrist")
    parser.add_argument("--stats", choices=("radians", "degrees"), default="radians")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.types = [t.strip() for t in args.types.split(",") if t.strip()]
    args.cameras = [c.strip() for c in args.cameras.split(",") if c.strip()]
    unknown = sorted(set(args.types) - set(ALL_TYPES))
    if unknown:
        parser.error(f"unknown --types {unknown}; choose from {', '.join(ALL_TYPES)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for policy_type in args.types:
        # LeRobot print()s progress ("Loading weights from local directory", ...): keep stdout
        # for the JSON lines only.
        with contextlib.redirect_stdout(sys.stderr):
            record = verify(build_and_save(policy_type, args, args.out_dir), args)
        print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
