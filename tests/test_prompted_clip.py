"""PromptedCLIP's text-feature cache: reused in evaluation, never stale after training."""
import torch
import torch.nn.functional as F

from engine import build_trainer


def test_cache_is_dropped_by_a_training_step(make_cfg, restore_stdout):
    trainer = build_trainer(make_cfg("CoOp", "DATASET.NUM_SHOTS", 2, "OPTIM.LR", 0.5))
    model = trainer.model
    image, label = trainer.parse_batch_train(next(iter(trainer.train_loader_x)))

    with torch.no_grad():
        before = model.text_features()
        assert model.text_features() is before, "evaluation reuses the cached features"

    loss = F.cross_entropy(model(image), label)
    trainer.model_backward_and_update(loss)

    with torch.no_grad():
        after = model.text_features()
        prompts = model.prompt_learner.text_inputs()
        fresh = F.normalize(model.text_encoder(prompts[0], prompts[1]).float(), dim=-1)
    assert not torch.equal(after, before)
    torch.testing.assert_close(after, fresh)
