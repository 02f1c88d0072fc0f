"""Prompt-enhancer throughput (prompts/second) on the tiny offline Qwen2 model, by batch size, on the CPU."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

DRAFTS = [
    "a small red fox with a bushy white-tipped tail wakes up in a misty pine forest at sunrise. wide shot.",
    "the fox stretches and yawns. cinematic, 35mm film grain, soft natural light.",
    "a graceful white swan glides across a serene lake at dawn, mist rising from the still water.",
    "close-up. a grey heron strikes at a fish in one fast motion. tall golden reeds at the water's edge.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=32, help="shots to expand per measurement")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()

    import torch

    from storyforge.enhance import qwen

    torch.set_num_threads(args.threads)
    requests = [qwen.Request(f"s/{i}", DRAFTS[i % len(DRAFTS)] + f" take {i}.", starts_from_image=i % 3 == 2)
                for i in range(args.prompts)]
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        model = qwen.build_tiny(Path(folder) / "tiny")
        built = time.perf_counter() - started
        ref = qwen.locate(str(model), Path.cwd())
        with qwen.Expander.load(ref) as expander:
            print(f"tiny Qwen2 (2 layers, hidden 64): built in {built:.2f}s, loaded in {expander.load_seconds:.2f}s; "
                  f"{args.prompts} prompts, {args.max_new_tokens} new tokens each (a random model never stops "
                  f"early: the worst case), {args.threads} thread(s), torch {torch.__version__}")
            prompt_tokens = sum(len(expander.tokenizer(expander.chat(r))["input_ids"]) for r in requests)
            print(f"prompt length: {prompt_tokens / len(requests):.0f} tokens on average (system prompt included)")
            print(f"{'batch':>5} {'seconds':>8} {'prompts/s':>10} {'new tokens/s':>13}")
            for batch in args.batch:
                expander.expand(requests[:batch], seed=0, max_new_tokens=args.max_new_tokens, batch_size=batch)
                best = float("inf")
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    results = expander.expand(requests, seed=0, max_new_tokens=args.max_new_tokens, batch_size=batch)
                    best = min(best, time.perf_counter() - started)
                tokens = sum(r.new_tokens for r in results)
                print(f"{batch:>5} {best:>8.2f} {len(requests) / best:>10.1f} {tokens / best:>13.0f}")


if __name__ == "__main__":
    main()
