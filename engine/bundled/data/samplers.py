"""Samplers by name: torch's RandomSampler and SequentialSampler.

Those are the ones our trainers and configs use. Dassl's group-balanced samplers
(RandomDomainSampler, SeqDomainSampler, RandomClassSampler, for its domain-adaptation
trainers) are not part of the bundled engine: asking for one is a one-line error that
points to a real Dassl install, which has them.
"""
from torch.utils.data import RandomSampler, SequentialSampler

from engine.user_errors import UserError

SAMPLER_NAMES = ("RandomSampler", "SequentialSampler")
DASSL_ONLY_SAMPLERS = ("RandomDomainSampler", "SeqDomainSampler", "RandomClassSampler")


class UnknownSamplerError(UserError, ValueError):
    """A DATALOADER.*.SAMPLER the bundled engine does not provide."""


def build_sampler(sampler_type, cfg=None, data_source=None, batch_size=32, n_domain=0, n_ins=2):
    if sampler_type == "RandomSampler":
        return RandomSampler(data_source)
    if sampler_type == "SequentialSampler":
        return SequentialSampler(data_source)
    if sampler_type in DASSL_ONLY_SAMPLERS:
        raise UnknownSamplerError(
            f"Sampler {sampler_type} is Dassl's, for its domain-adaptation trainers; the bundled "
            f"engine has {' and '.join(SAMPLER_NAMES)} (or install Dassl.pytorch, which the "
            "engine then uses)")
    raise UnknownSamplerError(f"Unknown sampler type: {sampler_type!r}; choose from {list(SAMPLER_NAMES)}")
