"""RolloutBatch shapes beyond one turn: group_index, sub_group and role come from the trajectories
unchanged, and select() keeps them."""

from __future__ import annotations

import torch

from rl.batch import collate
from rollout.types import Trajectory


def _traj(group, role=0, sub=None, n=2):
    return Trajectory(prompt_ids=[1, 2], completion_ids=[3] * n, group_index=group, role=role, sub_group=sub)


def test_collate_keeps_group_role_and_sub_group():
    trajs = [_traj(7), _traj(7, role=1, sub=0), _traj(7, role=1, sub=1, n=3), _traj(3)]
    b = collate(trajs, pad_token_id=0)
    assert b.group_index.tolist() == [7, 7, 7, 3]  # arbitrary ids, not renumbered
    assert b.role.tolist() == [0, 1, 1, 0]
    assert b.sub_group.tolist() == [-1, 0, 1, -1] and b.sub_group.dtype == torch.long
    s = b.select(torch.tensor([2, 3]))
    assert s.group_index.tolist() == [7, 3] and s.role.tolist() == [1, 0] and s.sub_group.tolist() == [1, -1]
    assert s.completion_mask.tolist() == [[1, 1, 1], [1, 1, 0]]


def test_sub_group_is_none_when_no_trajectory_has_one():
    b = collate([_traj(0), _traj(1)], pad_token_id=0)
    assert b.sub_group is None and b.select(torch.tensor([1])).sub_group is None
