"""Where ACDC's time goes when edges are kept: torch's profiler over one run, its top operators by self CPU time.

    .venv/bin/python benchmarks/profile_acdc.py [--shape mid] [--tau 0.00055] [--n-prompts 32] [--top 12]

The defaults are the mid shape (4 layers x 8 heads, d_model 256, random weights) at the tau that keeps about 3 % of
its edges (``results/taus.json``), 32 prompts of 16 tokens, one torch thread, as ``make bench`` runs it; the
table it prints is the one quoted in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
from bench import make_subject, new_setup, warm_up  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from discovery.methods.acdc import acdc  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="mid")
    parser.add_argument("--tau", type=float, default=0.00055)
    parser.add_argument("--n-prompts", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=16)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(1)
    subject = make_subject(args.shape, torch.device("cpu"), torch.float32, args.n_prompts, args.seq_len)
    warm_up(subject)
    setup = new_setup(subject)
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        out = acdc(setup, threshold=args.tau)
    kept = sum(1 for e in out.edges if e.kept)
    print(f"{args.shape}, tau {args.tau}: {kept} of {len(out.edges)} edges kept; batching {out.extras['batching']}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
