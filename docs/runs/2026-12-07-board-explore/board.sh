#!/usr/bin/env bash
# the board on explore, 3 seeds; grpo, dler, decs and the SFT starts reused from the 2026-12-07 DECS re-run
# (/tmp/exp/explore, docs/runs/2026-12-07-explore-decs: same settings, dac3faf)
while [ ! -f /tmp/rm7/DONE ]; do sleep 20; done
cd /work/wt-s6
export PYTHONPATH=/work/wt-s6
PY=/work/main/.venv/bin/python
O=/work/exp/board-explore
date +%s > /work/exp/board.t0
/usr/bin/time -f "compare %e s %M KB" $PY -m rl.commands.cli compare --task explore --methods efficiency --seeds 3 --jobs 2 --threads 1 \
  --report-to jsonl --out $O > /work/exp/board.log 2>&1
date +%s > /work/exp/board.t1
echo done > /work/exp/board.DONE
