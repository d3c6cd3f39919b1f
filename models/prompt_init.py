"""Initial values of learnable context vectors: from words or random normal(0.02)."""
import torch

from models.clip_loader import tokenize

RANDOM_INIT_STD = 0.02


def word_embeddings(clip_model, text):
    """Token embeddings of the words of ``text`` (no SOS/EOT), shape [n_words_tokens, D]."""
    tokens = tokenize([text])
    n_tokens = int((tokens[0] != 0).sum()) - 2
    with torch.no_grad():
        embedding = clip_model.token_embedding(tokens.to(clip_model.token_embedding.weight.device))
    return embedding[0, 1:1 + n_tokens].float().clone()


def init_context(clip_model, n_ctx, ctx_init="", n_cls=None, generator=None):
    """Context vectors and the text that stands in for them in the tokenised prompt.

    With ``ctx_init`` (e.g. "a photo of a") the vectors start as those words'
    embeddings and their number is the words' token count, as CoOp does. Otherwise
    ``n_ctx`` vectors ~ N(0, 0.02), one set per class when ``n_cls`` is given (CSC),
    with "X" placeholders.
    """
    width = clip_model.token_embedding.weight.shape[1]
    if ctx_init:
        text = ctx_init.replace("_", " ").strip()
        vectors = word_embeddings(clip_model, text)
        return vectors, text
    shape = (n_cls, n_ctx, width) if n_cls else (n_ctx, width)
    vectors = torch.empty(shape)
    torch.nn.init.normal_(vectors, std=RANDOM_INIT_STD, generator=generator)
    return vectors, " ".join(["X"] * n_ctx)
