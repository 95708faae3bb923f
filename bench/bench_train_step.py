"""Benchmark: cost of one training step of the default U-Net on the CPU, by memory format and precision.

    python bench/bench_train_step.py [--batch 8] [--tile 128] [--steps 10] [--threads 1] [--rounds 3]

One optimisation step (forward, BCE, backward, AdamW) of the default ``ModelSpec`` on a batch of random tiles, timed
in process CPU seconds so that other load on a shared machine does not count. Baseline: fp32, NCHW (plain PyTorch).
The variants are what ``temzoo.train`` uses: channels-last, and bf16 autocast when the CPU has native bf16
(``temzoo.device.cpu_bf16_native``; elsewhere the bf16 row measures emulation and temzoo leaves it off). The variants
are interleaved over several rounds and the median is reported, so a load change hits all of them alike.
The last row is temzoo's own step (``temzoo.train.loop._step``: augmentation on the batch, BCE + Dice, the strategy's
penalty check), what a fine-tune runs; run this script against an older checkout (``PYTHONPATH``) to compare steps.
"""

from __future__ import annotations

import argparse
import statistics
import time


VARIANTS = (("fp32, NCHW (baseline)", False, False), ("fp32, channels-last", True, False),
            ("bf16 autocast, channels-last", True, True))
TEMZOO_STEP = "temzoo.train.loop._step (bf16 where native, channels-last, augmentation, BCE + Dice)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant and round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F

    from temzoo.device import cpu_bf16_native
    from temzoo.zoo.checkpoint import ModelSpec

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x0 = torch.randn(args.batch, 1, args.tile, args.tile)
    y = (torch.rand(args.batch, 1, args.tile, args.tile) > 0.7).float()
    setups = []
    for name, cl, bf16 in VARIANTS:
        m = ModelSpec().build().train()
        x = x0
        if cl:
            m, x = m.to(memory_format=torch.channels_last), x0.contiguous(memory_format=torch.channels_last)
        setups.append((name, m, torch.optim.AdamW(m.parameters(), 1e-3), x, bf16))

    # temzoo's own step, with the settings a fine-tune from scratch uses (bf16 autocast where native, channels-last)
    from temzoo.train import loop as L
    from temzoo.train.config import TrainConfig
    from temzoo.train.strategies import Strategy

    cfg = TrainConfig(images="-", masks="-", batch_size=args.batch, tile_size=args.tile)
    tm = ModelSpec().build().train().to(memory_format=torch.channels_last)
    strat = Strategy("scratch", tm, batch_size=args.batch)
    t_opt, t_loss, g = torch.optim.AdamW(tm.parameters(), 1e-3), L.make_loss(cfg, 1), torch.Generator().manual_seed(0)
    cpu = torch.device("cpu")

    def temzoo_step() -> None:
        L._step(tm, strat, t_opt, t_loss, x0, y.long(), g, cfg, cpu, 1, seg=True)

    def step(m, opt, x, bf16) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = m(x)
        loss = F.binary_cross_entropy_with_logits(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    runs = [(name, lambda m=m, opt=opt, x=x, bf16=bf16: step(m, opt, x, bf16)) for name, m, opt, x, bf16 in setups]
    runs.append((TEMZOO_STEP, temzoo_step))
    times: dict[str, list[float]] = {name: [] for name, _ in runs}
    for _ in range(args.rounds):
        for name, run in runs:
            run()  # warm-up (oneDNN picks its kernels on the first call)
            t = time.process_time()
            for _ in range(args.steps):
                run()
            times[name].append((time.process_time() - t) / args.steps)

    base = statistics.median(times[VARIANTS[0][0]])
    print(f"# {args.batch} x {args.tile}^2 tiles, {args.threads} thread(s), torch {torch.__version__}, "
          f"native CPU bf16: {cpu_bf16_native()}; median of {args.rounds} rounds x {args.steps} steps")
    print("| variant | CPU-s per step | vs baseline |")
    print("|---|---:|---:|")
    for name in times:
        t = statistics.median(times[name])
        print(f"| {name} | {t:.3f} | {base / t:.2f}x faster |")


if __name__ == "__main__":
    main()
