"""Tiny random SD3 and Flux pipelines for tests, saved so that ``DiffusionPipeline.from_pretrained`` loads them.

Every component is built from a small config with random weights (seeded), and the tokenizers
are made from a vocabulary written here, so nothing comes from the network. The pipelines keep
the real architecture (a 4-level VAE with scale factor 8, the same text-encoder layout, guidance
embedding for Flux-dev) at about 0.2 M parameters, so a 64-128 px image takes well under a
second on a CPU. No pytest dependency: the trainer tests and benchmarks use these too.

    from tests.tiny_pipelines import save_tiny_flux
    folder = save_tiny_flux(tmp_path / "flux")
    pipe = DiffusionPipeline.from_pretrained(folder)
"""
from __future__ import annotations

import json
from pathlib import Path

# Words the tokenizers know as whole tokens; anything else falls back to characters (CLIP)
# or <unk> pieces (T5), which is fine for random models.
WORDS = (
    "a the of and in on with at by to from is are an photo picture image view close up of "
    "cat dog bird horse city street mountain lake river sea beach forest tree flower sky cloud "
    "sun night light red green blue white black yellow old young man woman child portrait "
    "house building bridge road car boat snow rain field grass stone wall window door table "
    "detailed high resolution landscape sunset sunrise morning evening colorful bright dark"
).split()

CLIP_BOS, CLIP_EOS = "<|startoftext|>", "<|endoftext|>"


def _printable_bytes() -> dict[int, str]:
    """Byte -> visible unicode character, the reversible alphabet that byte-level BPE works on.

    Bytes that are printable Latin-1 stand for themselves; the others (controls, space, ...)
    are shifted to code points from 256 upward so that every byte has a visible symbol.
    """
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, shifted = {}, 0
    for byte in range(256):
        if byte in kept:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + shifted)
            shifted += 1
    return table


def write_clip_tokenizer(folder) -> Path:
    """Write ``vocab.json`` + ``merges.txt`` of a small CLIP BPE vocabulary and its config."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(_printable_bytes().values())
    vocab: dict[str, int] = {}
    for token in symbols + [s + "</w>" for s in symbols]:
        vocab.setdefault(token, len(vocab))
    # Merge each known word left to right: c a t</w> -> ca t</w> -> cat</w>.
    merges: list[str] = []
    for word in WORDS:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            pair = f"{pieces[0]} {pieces[1]}"
            merged = pieces[0] + pieces[1]
            if pair not in merges:
                merges.append(pair)
            vocab.setdefault(merged, len(vocab))
            pieces = [merged] + pieces[2:]
    vocab[CLIP_BOS] = len(vocab)
    vocab[CLIP_EOS] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": CLIP_BOS,
        "eos_token": CLIP_EOS, "unk_token": CLIP_EOS, "pad_token": CLIP_EOS}, indent=2), encoding="utf-8")
    # Round trip through transformers so the folder also holds its native files (tokenizer.json);
    # a stale tokenizer.json would take precedence over the files just written.
    (folder / "tokenizer.json").unlink(missing_ok=True)
    CLIPTokenizer.from_pretrained(folder).save_pretrained(folder)
    return folder


def write_t5_tokenizer(folder) -> Path:
    """Write a small SentencePiece-style unigram tokenizer (``tokenizer.json``) in the T5 layout."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # T5 convention: <pad>=0, </s>=1, <unk>=2. Whole words score higher than single letters
    # so the unigram model prefers them.
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -3.0)]
    pieces += [("▁" + word, -1.0 - 0.01 * i) for i, word in enumerate(dict.fromkeys(WORDS))]
    pieces += [(letter, -5.0) for letter in "abcdefghijklmnopqrstuvwxyz0123456789,.-'"]
    model = Tokenizer(Unigram(pieces, unk_id=2))
    model.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
    ])
    model.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    model.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                         special_tokens=[("</s>", 1)])
    wrapper = PreTrainedTokenizerFast(tokenizer_object=model, pad_token="<pad>", eos_token="</s>",
                                      unk_token="<unk>", model_max_length=512)
    wrapper.save_pretrained(folder)
    # Loadable as the pipelines' T5 tokenizer class, not only as the generic fast tokenizer.
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "T5Tokenizer"
    config["extra_ids"] = 0
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return folder


def _load_tokenizers(folder: Path):
    from transformers import CLIPTokenizer, T5TokenizerFast

    clip = CLIPTokenizer.from_pretrained(write_clip_tokenizer(folder / "_clip_tokenizer"))
    t5 = T5TokenizerFast.from_pretrained(write_t5_tokenizer(folder / "_t5_tokenizer"))
    return clip, t5


def _clip_config(vocab_size: int, hidden: int, projection: int):
    from transformers import CLIPTextConfig

    # Token ids of BOS/EOS must match the tokenizer: CLIP pools the hidden state at the EOS token.
    return CLIPTextConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
                          projection_dim=projection, num_hidden_layers=2, num_attention_heads=2,
                          max_position_embeddings=77, hidden_act="gelu",
                          bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1)


def _t5_encoder(vocab_size: int, d_model: int):
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=vocab_size, d_model=d_model, d_kv=8, d_ff=2 * d_model, num_layers=1,
                      num_heads=d_model // 8, relative_attention_num_buckets=8, dropout_rate=0.0,
                      feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False)
    return T5EncoderModel(config)


def _tiny_vae(latent_channels: int, scaling: float, shift: float):
    from diffusers import AutoencoderKL

    # Four levels as in the real SD3/Flux VAEs: vae scale factor 8.
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=latent_channels,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=4, sample_size=128,
        scaling_factor=scaling, shift_factor=shift, use_quant_conv=False, use_post_quant_conv=False,
        mid_block_add_attention=True,
    )


def build_tiny_sd3(seed: int = 0):
    """A random ``StableDiffusion3Pipeline`` (2 CLIP encoders with projection, 1 T5 encoder)."""
    import tempfile

    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as scratch:
        clip_tokenizer, t5_tokenizer = _load_tokenizers(Path(scratch))
    clip_hidden, t5_dim = 16, 32  # the two CLIP widths concatenated must fit in the T5 width
    text_encoder = CLIPTextModelWithProjection(_clip_config(len(clip_tokenizer), clip_hidden, clip_hidden))
    text_encoder_2 = CLIPTextModelWithProjection(_clip_config(len(clip_tokenizer), clip_hidden, clip_hidden))
    text_encoder_3 = _t5_encoder(len(t5_tokenizer), t5_dim)
    transformer = SD3Transformer2DModel(
        sample_size=16, patch_size=2, in_channels=4, out_channels=4, num_layers=1, attention_head_dim=8,
        num_attention_heads=4, joint_attention_dim=t5_dim, caption_projection_dim=32,
        pooled_projection_dim=2 * clip_hidden, pos_embed_max_size=32,
    )
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_tiny_vae(4, scaling=1.5, shift=0.06),
        text_encoder=text_encoder, tokenizer=clip_tokenizer,
        text_encoder_2=text_encoder_2, tokenizer_2=clip_tokenizer,
        text_encoder_3=text_encoder_3, tokenizer_3=t5_tokenizer,
    )


def build_tiny_flux(seed: int = 0):
    """A random ``FluxPipeline`` (CLIP + T5, guidance embedding as in FLUX.1-dev)."""
    import tempfile

    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as scratch:
        clip_tokenizer, t5_tokenizer = _load_tokenizers(Path(scratch))
    clip_hidden, t5_dim, latent_channels = 32, 32, 4
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4 * latent_channels, num_layers=1, num_single_layers=1,
        attention_head_dim=16, num_attention_heads=2, joint_attention_dim=t5_dim,
        pooled_projection_dim=clip_hidden, guidance_embeds=True, axes_dims_rope=(4, 6, 6),
    )
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
        base_image_seq_len=256, max_image_seq_len=4096,
    )
    return FluxPipeline(
        transformer=transformer, scheduler=scheduler, vae=_tiny_vae(latent_channels, scaling=1.2, shift=0.1),
        text_encoder=CLIPTextModel(_clip_config(len(clip_tokenizer), clip_hidden, clip_hidden)),
        tokenizer=clip_tokenizer,
        text_encoder_2=_t5_encoder(len(t5_tokenizer), t5_dim), tokenizer_2=t5_tokenizer,
    )


def _save(pipe, folder) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(folder)
    return folder


def save_tiny_sd3(folder, seed: int = 0) -> Path:
    """Build a tiny random SD3 pipeline and save it to ``folder`` (created); returns the folder."""
    return _save(build_tiny_sd3(seed), folder)


def save_tiny_flux(folder, seed: int = 0) -> Path:
    """Build a tiny random Flux pipeline and save it to ``folder`` (created); returns the folder."""
    return _save(build_tiny_flux(seed), folder)


def build_tiny_vae(latent_channels: int = 4, scaling: float = 1.2, shift: float = 0.1, seed: int = 0):
    """The tiny pipelines' VAE on its own (F8, 4 levels), with a nearly deterministic posterior.

    A random VAE's posterior has a standard deviation near 1, which would make every latent
    sample mostly noise; a trained one's is tiny, so the log-variance bias is set low.
    """
    import torch

    torch.manual_seed(seed)
    vae = _tiny_vae(latent_channels, scaling, shift)
    with torch.no_grad():
        bias = vae.encoder.conv_out.bias
        bias[bias.shape[0] // 2:] = -20.0
    return vae


def save_tiny_lpips(folder, widths=(4, 8, 8, 16, 16), seed: int = 0) -> tuple[Path, Path]:
    """Random LPIPS weights in the real files' layouts: a torchvision-style VGG16 state dict
    (``features.N.*``) with small widths, and non-negative linear layers (``linK.model.1.weight``)."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    backbone, channels, index = {}, 3, 0
    for stage, (width, convs) in enumerate(zip(widths, (2, 2, 3, 3, 3))):
        if stage:
            index += 1  # max pool
        for _ in range(convs):
            scale = (2.0 / (9 * channels)) ** 0.5
            backbone[f"features.{index}.weight"] = torch.randn(width, channels, 3, 3, generator=generator) * scale
            backbone[f"features.{index}.bias"] = torch.randn(width, generator=generator) * 0.01
            channels, index = width, index + 2  # convolution + ReLU
    heads = {f"lin{k}.model.1.weight": torch.rand(1, w, 1, 1, generator=generator) / w for k, w in enumerate(widths)}
    torch.save(backbone, folder / "vgg16-tiny.pth")
    torch.save(heads, folder / "lpips-vgg-tiny.pth")
    return folder / "vgg16-tiny.pth", folder / "lpips-vgg-tiny.pth"
