"""M-GRPO's rollout pieces (arXiv 2511.13288), one layer of the method whose front door is
``rl/methods/mgrpo.py``:

- :mod:`rollout.mgrpo.agents`: the planner/executor environment (``environment: planner``);
- :mod:`rollout.mgrpo.store`: the store that decoupled roles share (in-process or Redis);
- :mod:`rollout.mgrpo.agent_server`: the executor behind HTTP, for roles in other processes.
"""
