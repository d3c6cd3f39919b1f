"""models/text_encoder.py and models/templates.py."""
import pytest
import torch

from models.prompted_attention import fused_attention
from models.text_encoder import full_context

from models import (
    CUSTOM_TEMPLATES,
    IMAGENET_TEMPLATES,
    IMAGENET_TEMPLATES_SELECT,
    TextEncoder,
    load_clip,
    template_for,
    tokenize,
)

PROMPTS = ["a photo of a cat.", "X X X X dog.", "a much longer prompt about a small red bicycle"]
LONGEST_EOT = 11  # SOS + 9 words + EOT of the last prompt: what a batch of PROMPTS is trimmed to
TINY_NAMES = ["tiny-vit", "tiny-rn"]


def assert_fp32_close(got, expected):
    """Equal up to the rounding of another fp32 summation order (any BLAS thread count)."""
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * max(expected.abs().max().item(), 1.0))


@pytest.fixture(scope="module", params=TINY_NAMES)
def clip_model(request):
    return load_clip(request.param)


def test_shares_clip_modules_instead_of_copying(clip_model):
    encoder = TextEncoder(clip_model)
    assert encoder.token_embedding is clip_model.token_embedding
    assert encoder.transformer is clip_model.transformer
    assert encoder.text_projection is clip_model.text_projection
    assert encoder.attn_mask is clip_model.attn_mask
    assert "attn_mask" not in encoder.state_dict()


def test_token_embeddings_in_equal_encode_text(clip_model):
    encoder = TextEncoder(clip_model)
    tokens = tokenize(PROMPTS)
    embeddings = encoder.embed(tokens)
    assert embeddings.shape == (3, 77, clip_model.ln_final.weight.shape[0])
    with torch.no_grad():
        expected = clip_model.encode_text(tokens)
        # all 77 tokens through the blocks' own forward: CLIP's computation, bit for bit
        with full_context(), fused_attention(False):
            assert torch.equal(encoder(embeddings, tokens), expected)
        # trimmed to the longest EOT, fused attention: the same up to fp32 rounding
        assert_fp32_close(encoder(embeddings, tokens), expected)


def test_layer_hook_sees_every_layer_once_in_order(clip_model):
    encoder = TextEncoder(clip_model)
    tokens = tokenize(PROMPTS)
    calls = []

    def record(index, x):
        calls.append((index, tuple(x.shape)))
        return x

    with torch.no_grad():
        hooked = encoder(encoder.embed(tokens), tokens, layer_hook=record)
        plain = encoder(encoder.embed(tokens), tokens)
    width = clip_model.ln_final.weight.shape[0]
    assert calls == [(i, (3, LONGEST_EOT, width)) for i in range(len(clip_model.transformer.resblocks))]
    assert torch.equal(hooked, plain)  # an identity hook changes nothing


def test_layer_hook_can_replace_prompt_tokens_before_a_layer(clip_model):
    encoder = TextEncoder(clip_model)
    tokens = tokenize(PROMPTS)
    deep_prompt = torch.ones(2, clip_model.ln_final.weight.shape[0])

    def replace_context_at_layer_1(index, x):
        if index != 1:
            return x
        # tokens 1..2 are where a prompt learner's context vectors sit
        return torch.cat([x[:, :1], deep_prompt.expand(x.shape[0], -1, -1), x[:, 3:]], dim=1)

    with torch.no_grad():
        replaced = encoder(encoder.embed(tokens), tokens, layer_hook=replace_context_at_layer_1)
    assert replaced.shape == (3, clip_model.text_projection.shape[1])
    assert not torch.allclose(replaced, clip_model.encode_text(tokens))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_runs_in_the_models_dtype(dtype):
    from open_clip import convert_weights_to_lp

    clip_model = load_clip("tiny-vit")
    convert_weights_to_lp(clip_model, dtype=dtype)
    encoder = TextEncoder(clip_model)
    tokens = tokenize(PROMPTS)
    with torch.no_grad():
        features = encoder(encoder.embed(tokens).float(), tokens)  # fp32 prompts are cast to the model's dtype
        assert features.dtype == dtype
        expected = clip_model.encode_text(tokens)
        with full_context(), fused_attention(False):
            assert torch.equal(encoder(encoder.embed(tokens).float(), tokens), expected)
    # trimmed and fused: equal up to the rounding of this dtype
    torch.testing.assert_close(features.float(), expected.float(), rtol=2e-2,
                               atol=2e-2 * expected.float().abs().max().item())


def test_gradients_reach_prompt_embeddings_not_clip(clip_model):
    encoder = TextEncoder(clip_model)
    tokens = tokenize(PROMPTS[:2])
    embeddings = encoder.embed(tokens).clone().requires_grad_(True)
    encoder(embeddings, tokens).sum().backward()
    assert embeddings.grad is not None and embeddings.grad.abs().sum() > 0
    assert all(p.grad is None for p in clip_model.parameters())


def test_encode_texts_matches_encode_text_and_chunks(clip_model):
    encoder = TextEncoder(clip_model)
    features = encoder.encode_texts(PROMPTS, batch_size=2)
    assert features.shape == (3, clip_model.text_projection.shape[1]) and not features.requires_grad
    with torch.no_grad():
        expected = clip_model.encode_text(tokenize(PROMPTS))
    assert_fp32_close(features, expected)
    assert torch.equal(encoder.encode_texts("a photo of a cat."), encoder.encode_texts(PROMPTS[:1]))


# --------------------------------------------------------------------------- templates


def test_imagenet_template_counts_and_placeholders():
    assert len(IMAGENET_TEMPLATES) == 80 and len(set(IMAGENET_TEMPLATES)) == 80
    assert len(IMAGENET_TEMPLATES_SELECT) == 7
    for template in IMAGENET_TEMPLATES + IMAGENET_TEMPLATES_SELECT:
        assert template.count("{}") == 1
    assert set(IMAGENET_TEMPLATES_SELECT) <= set(IMAGENET_TEMPLATES)


def test_imagenet_templates_match_openai_published_list():
    from open_clip import OPENAI_IMAGENET_TEMPLATES  # open_clip ships OpenAI's list as lambdas

    assert [t.format("cat") for t in IMAGENET_TEMPLATES] == [f("cat") for f in OPENAI_IMAGENET_TEMPLATES]


def test_custom_templates_per_dataset():
    assert template_for("OxfordPets") == "a photo of a {}, a type of pet."
    assert template_for("DescribableTextures") == "{} texture."
    assert template_for("EuroSAT") == "a centered satellite photo of {}."
    assert template_for("UCF101") == "a photo of a person doing {}."
    for name in ("ImageNet", "ImageNetSketch", "ImageNetV2", "ImageNetA", "ImageNetR", "Demo", "Unlisted"):
        assert template_for(name) == "a photo of a {}."
    assert len(CUSTOM_TEMPLATES) == 16 and all("{}" in t for t in CUSTOM_TEMPLATES.values())
