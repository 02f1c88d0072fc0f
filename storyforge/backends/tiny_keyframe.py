"""The `tiny` keyframe preset: a seeded, randomly initialised QwenImageEditPlusPipeline built offline; and the
Qwen2-VL processor shim that lets it (and the real model) load where torchvision is missing."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from storyforge.backends.tiny import built_folder
from storyforge.story.presets import TINY_EDIT_RECIPE

# The real Qwen2 / Qwen2.5-VL special tokens, in the real order (their ids follow the byte-level vocabulary).
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
)
# Qwen2's pre-tokenizer split (transformers' tokenization_qwen2.PRETOKENIZE_REGEX).
PRETOKENIZE_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
                     r"""\s*[\r\n]+|\s+(?!\S)|\s+""")
# What the byte-level BPE is trained on: the pipeline's own system prompt first, so that its chat template
# tokenises to exactly the 64 tokens the pipeline drops (`prompt_template_encode_start_idx`).
CORPUS = (
    "Describe the key features of the input image (color, shape, size, texture, objects, background), "
    "then explain how the user's text instruction should alter or modify the image. Generate a new image "
    "that meets the user's requirements while maintaining consistency with the original input where appropriate.",
    "system user assistant Picture 1: Picture 2: Picture 3: make it",
    "Put the cat from the first picture next to the dog from the second picture.",
    "Make the sky blue, add a red hat, change the background to a beach at sunset.",
    "The quick brown fox jumps over the lazy dog. A photo of a person standing in a park.",
    "replace the text, remove the object, keep the style, in the style of, same lighting",
)
BPE_VOCAB_SIZE = 640  # 256 byte symbols and merges: sized so that the template prefix is 64 tokens
Z_DIM = 4


def allow_processor_without_video() -> None:
    """Let transformers' Qwen2VLProcessor be built without its video processor when torchvision is missing.

    transformers 5 makes Qwen2VLProcessor require a Qwen2VLVideoProcessor, which needs torchvision, even though
    the edit pipeline never passes it video. Where torchvision is installed (every normal GPU install) this does
    nothing; where it is not (CPU-only machines whose torchvision wheel does not match torch), the processor is
    built from its image processor and tokenizer alone. No other behaviour changes."""
    from transformers import Qwen2VLProcessor
    from transformers.utils import is_torchvision_available

    if is_torchvision_available() or getattr(Qwen2VLProcessor, "_storyforge_without_video", False):
        return
    original = Qwen2VLProcessor.__init__

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):  # noqa: N807
        kwargs.pop("video_processor", None)
        original(self, image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template, **kwargs)

    Qwen2VLProcessor.__init__ = __init__
    Qwen2VLProcessor._storyforge_without_video = True


def tiny_edit_folder(cache_root: Path | None = None) -> Path:
    """The tiny edit pipeline's folder (`from_pretrained`-loadable), built and saved on first use."""
    return built_folder(TINY_EDIT_RECIPE, build_tiny_edit_pipeline, cache_root)


def build_tiny_edit_pipeline():
    """The tiny pipeline in memory: the real Qwen-Image-Edit architecture at toy size, weights from fixed seeds.

    Sizes follow the research recipe: an x8-space VAE like the real one, a 2-layer Qwen2.5-VL text encoder
    with a 2-deep vision tower, and a 2-layer MMDiT whose text width is the encoder's.
    """
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditPlusPipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLImageProcessorPil,
        Qwen2VLProcessor,
    )

    allow_processor_without_video()
    tokenizer = _tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=28 * 28 * 1280, patch_size=14,
                                                 temporal_patch_size=2, merge_size=2),
        tokenizer=tokenizer)
    # fork_rng: seeding for the weights must not reset the caller's global RNG
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        text_encoder = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(
            text_config={
                "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                "num_key_value_heads": 2, "vocab_size": len(tokenizer), "max_position_embeddings": 4096,
                "rope_parameters": {"mrope_section": [1, 1, 2], "rope_type": "default", "rope_theta": 1000000.0},
                "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
                "pad_token_id": ids["<|endoftext|>"],
            },
            vision_config={
                "depth": 2, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2, "out_hidden_size": 16,
                "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
                "fullatt_block_indexes": [1],
            },
            image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
            vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        )).eval()
        torch.manual_seed(0)
        vae = AutoencoderKLQwenImage(base_dim=4, z_dim=Z_DIM, dim_mult=[1, 2, 4, 4], num_res_blocks=1,
                                     temperal_downsample=[False, True, True], latents_mean=[0.0] * Z_DIM,
                                     latents_std=[1.0] * Z_DIM).eval()
        torch.manual_seed(0)
        transformer = QwenImageTransformer2DModel(
            patch_size=2, in_channels=Z_DIM * 4, out_channels=Z_DIM, num_layers=2, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=16, guidance_embeds=False, axes_dims_rope=(8, 4, 4)).eval()
    # the real checkpoint's scheduler settings
    scheduler = FlowMatchEulerDiscreteScheduler(
        base_image_seq_len=256, base_shift=0.5, max_image_seq_len=8192, max_shift=0.9, num_train_timesteps=1000,
        shift=1.0, shift_terminal=0.02, use_dynamic_shifting=True, time_shift_type="exponential")
    pipe = QwenImageEditPlusPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                     processor=processor, transformer=transformer)
    prefix = pipe.prompt_template_encode.split("{}")[0]
    dropped = len(tokenizer(prefix)["input_ids"])
    if dropped != pipe.prompt_template_encode_start_idx:  # the pipeline would cut into the user's prompt
        raise RuntimeError(f"the tiny tokenizer makes {dropped} template tokens, the pipeline drops "
                           f"{pipe.prompt_template_encode_start_idx}; retune BPE_VOCAB_SIZE")
    return pipe


def _tokenizer():
    """A byte-level BPE trained here (no vocabulary file to download), as the Qwen2 tokenizer class."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE(unk_token=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=BPE_VOCAB_SIZE, min_frequency=1, special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(list(CORPUS) * 4, trainer=trainer)
    vocab = bpe.get_vocab()
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" "))
              for m in json.loads(bpe.to_str())["model"]["merges"]]
    first = len(vocab)
    for n, token in enumerate(SPECIAL_TOKENS):
        vocab[token] = first + n
    return Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None, eos_token="<|im_end|>",
                          pad_token="<|endoftext|>", extra_special_tokens=list(SPECIAL_TOKENS[1:]),
                          model_max_length=32768, errors="replace", clean_up_tokenization_spaces=False,
                          split_special_tokens=False)
