"""VisionEncoder and the shared deep-prompt hook on the tiny CLIPs."""
import pytest
import torch

from models.clip_loader import load_clip, tokenize
from models.deep_prompts import (
    DeepPromptHook,
    PromptDepthError,
    PromptSlots,
    check_depth,
    make_deep_prompts,
    text_slots,
    text_width,
    vision_slots,
)
from models.text_encoder import TextEncoder
from models.vision_encoder import VisionEncoder, VisionPromptsUnsupported


@pytest.fixture(scope="module")
def tiny_vit():
    return load_clip("tiny-vit", pretrained=False).eval()


@pytest.fixture(scope="module")
def tiny_rn():
    return load_clip("tiny-rn", pretrained=False).eval()


def images(n=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=generator)


class RecordingHook:
    """Wraps a hook; records (layer, input) pairs and what the hook returned."""

    def __init__(self, inner=None):
        self.inner = inner
        self.calls = []

    def __call__(self, layer, x):
        out = x if self.inner is None else self.inner(layer, x)
        self.calls.append((layer, x.detach().clone(), out.detach().clone()))
        return out


def test_vision_encoder_equals_encode_image_on_vit(tiny_vit):
    encoder = VisionEncoder(tiny_vit)
    x = images()
    with torch.no_grad():
        expected = tiny_vit.encode_image(x)
        got = encoder(x)
        hooked = encoder(x, layer_hook=lambda i, t: t)
    # the fused attention path equals open_clip's own up to fp32 rounding
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())
    assert torch.equal(hooked, got)
    assert encoder.width == 48 and encoder.num_layers == 3  # widths from the model


def test_vision_encoder_resnet_plain_path_and_clear_error(tiny_rn):
    encoder = VisionEncoder(tiny_rn, "tiny-rn")
    x = images()
    with torch.no_grad():
        assert torch.equal(encoder(x), tiny_rn.encode_image(x))
    assert not encoder.supports_prompts
    with pytest.raises(VisionPromptsUnsupported, match="tiny-rn.*ModifiedResNet"):
        encoder(x, prompts=torch.zeros(2, 8))
    with pytest.raises(VisionPromptsUnsupported, match="tiny-rn"):
        encoder.width


def test_vision_prompts_are_appended_last_and_replaced_by_the_hook(tiny_vit):
    encoder = VisionEncoder(tiny_vit)
    n, width = 2, encoder.width
    first = torch.randn(n, width)
    deeper = [torch.randn(n, width) for _ in range(2)]
    recorder = RecordingHook(DeepPromptHook(vision_slots(n), deeper))
    with torch.no_grad():
        out = encoder(images(), layer_hook=recorder, prompts=first)
    assert out.shape == (3, tiny_vit.visual.output_dim)
    assert [layer for layer, _, _ in recorder.calls] == [0, 1, 2]
    n_tokens = 1 + (32 // 8) ** 2
    # layer 0: the hook leaves the input alone; the last n tokens are the (ln_pre'd) prompts
    _, before0, after0 = recorder.calls[0]
    assert before0.shape[1] == n_tokens + n and torch.equal(before0, after0)
    expected_first = tiny_vit.visual.ln_pre(first)
    torch.testing.assert_close(before0[0, -n:], expected_first)
    for layer in (1, 2):
        _, before, after = recorder.calls[layer]
        assert torch.equal(after[:, :-n], before[:, :-n]), "only the prompt slots change"
        assert torch.equal(after[:, -n:], deeper[layer - 1].expand(3, -1, -1))
        assert not torch.equal(before[:, -n:], after[:, -n:])


def test_text_prompts_replaced_at_tokens_one_to_n(tiny_vit):
    encoder = TextEncoder(tiny_vit)
    n = 3
    tokens = tokenize(["a photo of a cat.", "a photo of a dog."])
    deeper = [torch.randn(n, text_width(tiny_vit)) for _ in range(2)]
    recorder = RecordingHook(DeepPromptHook(text_slots(n), deeper))
    with torch.no_grad():
        encoder(encoder.embed(tokens), tokens, layer_hook=recorder)
    assert [layer for layer, _, _ in recorder.calls] == [0, 1, 2]
    assert torch.equal(recorder.calls[0][1], recorder.calls[0][2])
    for layer in (1, 2):
        _, before, after = recorder.calls[layer]
        assert torch.equal(after[:, :1], before[:, :1])
        assert torch.equal(after[:, 1 + n:], before[:, 1 + n:])
        assert torch.equal(after[:, 1:1 + n], deeper[layer - 1].expand(2, -1, -1))


def test_depth_zero_or_no_prompts_gives_frozen_clip_features(tiny_vit):
    text = TextEncoder(tiny_vit)
    vision = VisionEncoder(tiny_vit)
    tokens = tokenize(["a photo of a cat."])
    x = images()
    empty = make_deep_prompts(0, 2, 48)
    assert len(empty) == 0
    with torch.no_grad():
        got_text = text(text.embed(tokens), tokens, layer_hook=DeepPromptHook(text_slots(2), list(empty)))
        got_image = vision(x, layer_hook=DeepPromptHook(vision_slots(2), []), prompts=None)
        text_expected, image_expected = tiny_vit.encode_text(tokens), tiny_vit.encode_image(x)
    for got, expected in ((got_text, text_expected), (got_image, image_expected)):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * expected.abs().max().item())


def test_slots_replace_keeps_dtype_and_gradient():
    x = torch.zeros(2, 6, 4, dtype=torch.bfloat16)
    prompt = torch.ones(2, 4, requires_grad=True)
    out = PromptSlots(2, start=None).replace(x, prompt)
    assert out.dtype == torch.bfloat16 and out.shape == x.shape
    assert out[:, -2:].eq(1).all() and out[:, :-2].eq(0).all()
    out.float().sum().backward()
    assert torch.equal(prompt.grad, torch.full((2, 4), 2.0))
    with pytest.raises(ValueError, match="does not fit"):
        text_slots(3).replace(x, torch.ones(2, 4))


def test_check_depth_names_the_key_and_the_limit():
    assert check_depth(3, 3, "TRAINER.MAPLE.PROMPT_DEPTH") == 3
    with pytest.raises(PromptDepthError, match=r"TRAINER.MAPLE.PROMPT_DEPTH is 9 .* only 3 layers"):
        check_depth(9, 3, "TRAINER.MAPLE.PROMPT_DEPTH")
    with pytest.raises(PromptDepthError, match="at least 1"):
        check_depth(0, 3, "TRAINER.VPT.PROMPT_DEPTH_VISION", minimum=1)
