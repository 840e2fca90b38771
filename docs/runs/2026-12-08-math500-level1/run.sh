#!/usr/bin/env bash
# issue 33: the OOD check, MATH-500 level 1 (43 problems), greedy, on the SFT start and the three trained arms
cd /work/wt-s7
export PYTHONPATH=/work/wt-s7 OMP_NUM_THREADS=2
/usr/bin/time -f "eval %e s %M KB" /work/main/.venv/bin/python -m rl.commands.cli eval \
  --models sft_start=/tmp/rm2/sft/final grpo_trunc=/tmp/rm6/compare/grpo_trunc/final \
           decs=/tmp/rm7/compare/decs/final grpo_lead=/tmp/rm7/compare/grpo_lead/final \
  --benchmarks math500 --where level=1 --temperature 0 --max-new-tokens 384 --threads 2 --seed 0 \
  --output-dir /work/exp/math500/out --report-to console --no-progress > /work/exp/math500/log 2>&1
echo done > /work/exp/math500/DONE
