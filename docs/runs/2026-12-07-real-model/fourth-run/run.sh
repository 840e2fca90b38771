#!/usr/bin/env bash
cd /work/wt-s5
export PYTHONPATH=/work/wt-s5
PY=/work/main/.venv/bin/python
M=$HOME/.cache/parsimony/models/smollm2-135m-instruct
O=/tmp/rm7
date +%s > $O/t0
/usr/bin/time -f "compare %e s %M KB" $PY -m rl.commands.cli compare --task word_problems_think --model-dir $M --sft-checkpoint /tmp/rm2/sft/final \
  --methods grpo_lead,decs --grpo-steps 24 --lr 1e-5 --warmup-steps 2 --prompts-per-step 8 --num-generations 4 \
  --max-completion-length 256 --eval-problems 200 --decs-sampler plain --jobs 2 --threads 1 --report-to jsonl --out $O/compare > $O/compare.log 2>&1
date +%s > $O/t1
echo done > $O/DONE
