"""Does glibc's growing-tensor mmap churn cost the real model's CPU decoding? One arm per process."""
import ctypes, json, os, resource, sys, time
arm, model_dir, batch, tokens, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if arm == "mallopt":
    libc = ctypes.CDLL("libc.so.6")
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    assert libc.mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1
    assert libc.mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024) == 1
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
torch.set_num_threads(threads)
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
prompts = [tok.apply_chat_template([{"role": "user", "content": f"Tom has {i + 3} apples and buys {2 * i + 5} more. "
           "How many apples does he have? Put the final answer in \\boxed{}."}], tokenize=False, add_generation_prompt=True)
           for i in range(batch)]
tok.padding_side = "left"
enc = tok(prompts, return_tensors="pt", padding=True)
torch.manual_seed(0)
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
with torch.no_grad():
    out = model.generate(**enc, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=True, temperature=1.0, top_k=0,
                         pad_token_id=tok.pad_token_id)
wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"arm": arm, "preload": os.environ.get("LD_PRELOAD", ""), "batch": batch, "tokens": tokens,
                  "threads": threads, "wall_s": round(wall, 2), "user_s": round(r1.ru_utime - r0.ru_utime, 2),
                  "sys_s": round(r1.ru_stime - r0.ru_stime, 2), "minor_faults": r1.ru_minflt - r0.ru_minflt,
                  "max_rss_mb": r1.ru_maxrss // 1024, "out_sum": int(out.sum())}))
