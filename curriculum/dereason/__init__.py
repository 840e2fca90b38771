"""DeReason's data pieces (arXiv 2603.11193), one layer of the method whose front door is
``rl/methods/dereason.py``: reasoning-intensity scoring and the SFT/RL split
(:mod:`curriculum.dereason.difficulty`; the scorer interface in :mod:`curriculum.dereason.scorer_base`,
the judge and column scorers in :mod:`curriculum.dereason.scorers`)."""
