"""Less padding in the update, the same loss and gradient: length-sorted pieces and trimmed
micro-batches (rl/update_padding.py) against the plain full-width batch, on one fixed batch."""

from __future__ import annotations

import pytest
import torch

from rl.batch import collate
from rl.grpo_trainer import GRPOTrainer
from rl.losses import aggregation_denominator, term_denominators
from rl.update_padding import length_sorted_chunks, pad_columns, trim_padding
from rollout.types import Trajectory
from tests_helpers_grpo import make_cfg, make_dataset, make_lengths_uneven, token_sum_reward


def test_length_sorted_chunks_cover_every_row_once():
    lengths = torch.tensor([3, 9, 1, 7, 7, 2, 8, 5])
    assert [c.tolist() for c in length_sorted_chunks(lengths, 2)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    chunks = length_sorted_chunks(lengths, 2, pieces=2)
    assert len(chunks) == 4
    assert [c.tolist() for c in chunks] == [[1, 3], [0, 2], [6, 4], [7, 5]]  # within each accumulation chunk
    assert len(length_sorted_chunks(torch.tensor([4]), 2, pieces=3)) == 6  # always k * pieces (DDP alignment)


def test_trim_padding_cuts_only_padding():
    trajs = [Trajectory(prompt_ids=[5, 6, 7], completion_ids=[1, 2]), Trajectory(prompt_ids=[8, 9], completion_ids=[3])]
    wide = collate(trajs + [Trajectory(prompt_ids=[1, 2, 3, 4], completion_ids=[1, 2, 3, 4, 5])], 0)
    wide.advantages = {"main": torch.arange(15, dtype=torch.float32).view(3, 5)}
    mb = trim_padding(wide.select(torch.tensor([0, 1])))
    assert mb.prompt_ids.tolist() == [[5, 6, 7], [0, 8, 9]]
    assert mb.completion_ids.tolist() == [[1, 2], [3, 0]]
    assert mb.advantages["main"].tolist() == [[0.0, 1.0], [5.0, 6.0]]
    assert pad_columns(mb.advantages["main"], 5).shape == (2, 5)


def _fixed_batch(trainer):
    trainer._timing = {k: 0.0 for k in ("rollout", "reward", "logprobs", "update", "weight_sync")}
    trainer._reward_metrics = {}
    groups = trainer.rollout_and_score(trainer.sampler.draw(trainer.args.step_prompts))
    batch = trainer.build_batch(groups)
    trainer._add_reference_logprobs(batch)
    batch.advantages = trainer.advantage_fn(batch, trainer.args)
    return batch


def _loss_and_grads(trainer, batch, pieces, trim):
    args = trainer.args
    model = trainer.model
    model.zero_grad(set_to_none=True)
    mode = args.loss_agg_mode
    dens = term_denominators(trainer.loss_terms, batch.completion_mask, batch.rollout_masks, mode)
    kl_den = aggregation_denominator(batch.completion_mask, mode)
    total = 0.0
    for idx in length_sorted_chunks(batch.completion_lengths, 1, pieces):
        if len(idx) == 0:
            continue
        mb = batch.select(idx)
        loss, _ = trainer._micro_loss(trim_padding(mb) if trim else mb, dens, kl_den)
        loss.backward()
        total += float(loss.detach())
    return total, {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("overrides", [
    dict(loss_agg_mode="token-mean"),
    dict(loss_agg_mode="seq-mean-token-mean", beta=0.1, num_iterations=2),
])
def test_pieces_and_trimming_give_the_unpadded_loss_and_gradient(tiny_model_dir, tmp_path, overrides):
    cfg = make_cfg(tiny_model_dir, tmp_path, max_completion_length=12, **overrides)
    trainer = GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=make_dataset())
    make_lengths_uneven(trainer)  # completions of 2..12 tokens
    batch = _fixed_batch(trainer)
    assert len(set(batch.completion_lengths.tolist())) > 2
    trainer.model.eval()  # dropout-free either way; eval keeps the comparison deterministic
    plain_loss, plain = _loss_and_grads(trainer, batch, pieces=1, trim=False)
    loss, grads = _loss_and_grads(trainer, batch, pieces=4, trim=True)
    assert plain_loss != 0.0
    assert abs(loss - plain_loss) <= 1e-5 * max(1.0, abs(plain_loss))
    assert plain.keys() == grads.keys()
    for k in plain:
        assert torch.allclose(grads[k], plain[k], rtol=1e-4, atol=1e-6), k


def test_a_step_with_pieces_equals_a_step_without(tiny_model_dir, tmp_path):
    def one_step(tag, **kw):
        cfg = make_cfg(tiny_model_dir, tmp_path / tag, max_grad_norm=0.0, learning_rate=1e-2, adam_beta1=0.0,
                       adam_beta2=0.0, adam_epsilon=1.0, **kw)
        trainer = GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=make_dataset())
        make_lengths_uneven(trainer)
        before = {k: v.detach().clone() for k, v in trainer.unwrapped_model.named_parameters()}
        trainer.train()
        return {k: v.detach() - before[k] for k, v in trainer.unwrapped_model.named_parameters()}

    plain, split = one_step("plain"), one_step("split", split_by_length=4)
    total = sum(float(d.abs().sum()) for d in plain.values())
    diff = sum(float((plain[k] - split[k]).abs().sum()) for k in plain)
    assert total > 0 and diff < 1e-4 * total


def test_config_checks_the_performance_options(tiny_model_dir, tmp_path):
    from rl.errors import ConfigError

    with pytest.raises(ConfigError, match="split_by_length"):
        make_cfg(tiny_model_dir, tmp_path, split_by_length=0)
    with pytest.raises(ConfigError, match="hf_decode"):
        make_cfg(tiny_model_dir, tmp_path, hf_decode="fast")
    cfg = make_cfg(tiny_model_dir, tmp_path, hf_decode="compact")
    trainer = GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=make_dataset())
    assert trainer.engine.decode == "compact"
