#!/usr/bin/env bash
# three allocators on the same decode, one after another, twice (ABCABC), idle machine
M=~/.cache/parsimony/models/smollm2-135m-instruct
PY=/work/main/.venv/bin/python
cd /work/exp/malloc
for rep in 1 2; do
  OMP_NUM_THREADS=1 $PY probe.py default $M 32 192 1 >> res.jsonl 2>>err.log
  OMP_NUM_THREADS=1 $PY probe.py mallopt $M 32 192 1 >> res.jsonl 2>>err.log
  OMP_NUM_THREADS=1 LD_PRELOAD=/tmp/jem/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 $PY probe.py jemalloc $M 32 192 1 >> res.jsonl 2>>err.log
done
echo done > DONE
