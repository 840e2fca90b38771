"""DECS's reward pieces (arXiv 2509.25827), one layer of the method whose front door is
``rl/methods/decs.py``:

- :mod:`rewards.decs.chunking`: token character offsets and reasoning chunks (``lines``);
- :mod:`rewards.decs.paper_chunking`: the released code's chunking on token ids (``paper``);
- :mod:`rewards.decs.judge_types`: what every judge speaks (the item, the protocol);
- :mod:`rewards.decs.rule_judge` / :mod:`rewards.decs.judges`: the NRP judges (rule, endpoint);
- :mod:`rewards.decs.judge_prompts`: the endpoint judge's prompts, decoding and verdict rules;
- :mod:`rewards.decs.nrp`: the NRP detection over a batch (which tokens are redundant);
- :mod:`rewards.decs.settings`: the reward's ``method_kwargs`` settings;
- :mod:`rewards.decs.reward`: the token-level ``decs_redundancy`` reward.

``from rewards.decs import DECSRedundancyReward`` (the path before the layout of issue 28) keeps working.
"""

from rewards.decs.reward import *  # noqa: F401,F403
from rewards.decs.reward import __all__  # noqa: F401
