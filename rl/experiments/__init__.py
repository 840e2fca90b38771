"""The proof harnesses behind ``parsimony compare``, ``compare-trl``, ``compare-agents``,
``compare-schedules``, ``leaderboard`` and ``quickstart``, and the embedded tiny model they (and the
tests) start from. They drive the engine from the outside, as a user's script would."""
