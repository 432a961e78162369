"""PopSAN's fused LIF layers against the same neurons run op by op, side by side (issue 22).

Each layer's T steps run as one autograd node with the backward through time written out
(``SynapticLIF.spike_train``); the reference runs the one-step neuron T times through autograd
(``SteppedNeurons(SynapticLIF())``, the actor before the fusion). Same weights, same observations, interleaved
rounds (A B A B ...), medians; ratios > 1 mean the fused actor is faster. The spikes are checked identical.

    python bench/popsan_fused.py --rounds 7
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from aolo.envs.cell_env import OBS_FEATURES  # noqa: E402
from aolo.policies.popsan import PopSANActor, SteppedNeurons, SynapticLIF  # noqa: E402

OBS_DIM, ACT_DIM = len(OBS_FEATURES), 2
#: (label, batch, with gradient): an env step of a cell or a site, the learner's batch
CASES = (("batch 16, no grad", 16, False), ("batch 256, no grad", 256, False), ("batch 256, fwd+bwd", 256, True))


def call_ms(actor: PopSANActor, obs: torch.Tensor, grad: bool, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        if grad:
            actor(obs).square().sum().backward()
        else:
            with torch.no_grad():
                actor(obs)
    return (time.perf_counter() - t0) / calls * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 256], help="hidden widths (quick, paper)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"PopSAN actor, {OBS_DIM} observations, 2 hidden layers, T = 5; medians of {args.rounds} interleaved rounds")
    print(f"{'hidden':>6}  {'case':<20} {'fused ms':>9} {'op by op ms':>12} {'ratio':>6}")
    for width in args.hidden:
        torch.manual_seed(0)
        fused = PopSANActor(OBS_DIM, ACT_DIM, (width, width))
        stepped = copy.deepcopy(fused)
        stepped.lif = torch.nn.ModuleList(SteppedNeurons(SynapticLIF()) for _ in stepped.fc)
        for label, batch, grad in CASES:
            obs = torch.randn(batch, OBS_DIM)
            with torch.no_grad():
                assert torch.equal(fused(obs), stepped(obs)), "the fused actor must fire the same spikes"
            calls = max(5, 2560 // batch)
            times: dict[str, list[float]] = {"fused": [], "stepped": []}
            for _ in range(args.rounds):
                times["fused"].append(call_ms(fused, obs, grad, calls))
                times["stepped"].append(call_ms(stepped, obs, grad, calls))
            f, s = statistics.median(times["fused"]), statistics.median(times["stepped"])
            print(f"{width:>6}  {label:<20} {f:9.3f} {s:12.3f} {s / f:5.2f}x")


if __name__ == "__main__":
    main()
