"""Compute energy of one actor decision: ANN (MLP) versus PopSAN from its real spike counts.

Analytic 45 nm CMOS model (Horowitz, "Computing's energy problem", ISSCC 2014; FP32 at 0.9 V),
as in docs/design.md §5 (the usual recipe of SNN energy estimates, e.g. for PopSAN, Tang et al., CoRL 2020):

* ANN: every dense layer costs fan_in * fan_out MACs at ``E_MAC_PJ`` (biases and activations are
  not counted, the usual convention).
* SNN: layers whose input is real-valued (the encoder's Gaussian receptive fields, the decoder
  and any log-std readout on firing rates) cost MACs; every synapse driven by a binary spike costs
  one accumulate, so a spiking layer costs ``E_AC_PJ`` x (presynaptic spikes x fan-out), summed
  over the T timesteps; plus the neuron state updates below.

Neuron-update cost (per neuron, per timestep; our choice, kept conservative):

* LIF neuron (hidden and output populations): c <- d_c * c + I and v <- d_v * v + c are counted as
  two MACs, i.e. the decays are priced as generic FP32 multiplies (no shift tricks for 1/2 and
  3/4), plus one AC for the bias, which PopSAN adds to the current on every timestep:
  ``LIF_UPDATE_PJ = 2 * 4.6 + 0.9 = 10.1 pJ``. Rate-coded SNNs with sparse spikes are often
  dominated by this term, so leaving it out (as many SNN papers do) would flatter the SNN.
* Encoder neuron: integrating its stimulation, v <- v + A, is one AC: ``ENCODER_UPDATE_PJ``.

Not counted, for either network: memory traffic and data movement (which dominate on real
hardware), threshold comparisons and resets (the ANN's ReLUs are not counted either), the exp of
the receptive fields, and the 1/T rate scaling (folded into the decoder weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from aolo.policies.popsan import PopSANActor

#: FP32 multiply (3.7 pJ) + add (0.9 pJ), 45 nm (Horowitz 2014).
E_MAC_PJ = 4.6
#: FP32 add, 45 nm (Horowitz 2014).
E_AC_PJ = 0.9
#: MACs of one Gaussian receptive field: subtract the mean, square, scale by 1 / (2 sigma^2).
ENCODER_MACS_PER_NEURON = 3
#: One LIF neuron for one timestep: current and voltage decay-and-accumulate (2 MACs) + bias (1 AC).
LIF_UPDATE_PJ = 2 * E_MAC_PJ + E_AC_PJ
#: One encoder neuron for one timestep: accumulate its stimulation (1 AC).
ENCODER_UPDATE_PJ = E_AC_PJ


@dataclass(frozen=True)
class ActorEnergy:
    """Energy and operation counts of one actor decision (averaged over a batch of decisions).

    ``nj_per_decision = (E_MAC_PJ * macs + E_AC_PJ * synops) / 1000 + neuron_nj``.
    """

    nj_per_decision: float
    #: MACs of layers with real-valued inputs (for an MLP: all of its MACs).
    macs: float
    #: Synaptic operations: presynaptic spikes x fan-out, summed over timesteps (0 for an MLP).
    synops: float
    #: Neuron state updates (neurons x timesteps, encoder and LIF; 0 for an MLP).
    neuron_updates: float
    #: Energy of those neuron state updates, nJ.
    neuron_nj: float


def mlp_macs(layer_sizes: Sequence[int]) -> int:
    """MACs of a dense MLP with these layer widths, e.g. [17, 256, 256, 6] (biases excluded)."""
    return sum(n_in * n_out for n_in, n_out in zip(layer_sizes, layer_sizes[1:], strict=False))


def mlp_energy_nj(layer_sizes: Sequence[int]) -> float:
    """nJ of one forward pass of a dense MLP at batch size 1."""
    return mlp_macs(layer_sizes) * E_MAC_PJ / 1000.0


def mlp_actor_energy(layer_sizes: Sequence[int]) -> ActorEnergy:
    """``ActorEnergy`` of an MLP actor, e.g. RLlib's default SAC pi [obs, 256, 256, 2 * act]."""
    return ActorEnergy(mlp_energy_nj(layer_sizes), float(mlp_macs(layer_sizes)), 0.0, 0.0, 0.0)


def snn_energy_nj(
    *,
    real_macs: float,
    presynaptic_spikes: Sequence[float],
    fan_outs: Sequence[int],
    lif_neurons: int,
    encoder_neurons: int,
    timesteps: int,
) -> ActorEnergy:
    """``ActorEnergy`` of one SNN decision from its spike counts.

    Args:
        real_macs: MACs of the layers with real-valued inputs (encoder fields, decoder, ...).
        presynaptic_spikes: spikes per decision (summed over timesteps and neurons) of each
            population that drives a synapse layer, in order (encoder, hidden layers).
        fan_outs: the matching fan-out, i.e. the width of the layer each population drives.
        lif_neurons: number of LIF neurons (hidden + output populations).
        encoder_neurons: number of encoder neurons.
        timesteps: spiking timesteps T per decision.
    """
    if len(presynaptic_spikes) != len(fan_outs):
        raise ValueError("need one fan-out per presynaptic population")
    synops = float(sum(s * f for s, f in zip(presynaptic_spikes, fan_outs, strict=False)))
    neuron_updates = float((lif_neurons + encoder_neurons) * timesteps)
    neuron_pj = timesteps * (lif_neurons * LIF_UPDATE_PJ + encoder_neurons * ENCODER_UPDATE_PJ)
    neuron_nj = neuron_pj / 1000.0
    nj = (E_MAC_PJ * real_macs + E_AC_PJ * synops) / 1000.0 + neuron_nj
    return ActorEnergy(nj, float(real_macs), synops, neuron_updates, neuron_nj)


@torch.no_grad()
def popsan_energy_nj(
    actor: PopSANActor, obs_batch: torch.Tensor | np.ndarray, extra_real_macs: float = 0.0
) -> ActorEnergy:
    """Mean ``ActorEnergy`` per decision of ``actor`` on ``obs_batch`` (B, obs_dim), counting the
    spikes it really emits.

    ``extra_real_macs`` adds readouts that run on the output rates besides the decoder (e.g. a
    log-std head).
    """
    obs = torch.as_tensor(obs_batch, dtype=torch.float32, device=actor.decoder.weight.device)
    _, counts = actor.forward_with_spikes(obs)
    sizes = actor.layer_sizes
    encoder_neurons = sizes[0]
    decoder_macs = actor.act_dim * actor.pop_out
    return snn_energy_nj(
        real_macs=ENCODER_MACS_PER_NEURON * encoder_neurons + decoder_macs + extra_real_macs,
        # The output population drives no synapses: only the decoder, priced as MACs on rates.
        presynaptic_spikes=[float(c.sum()) / obs.shape[0] for c in counts[:-1]],
        fan_outs=sizes[1:],
        lif_neurons=sum(sizes[1:]),
        encoder_neurons=encoder_neurons,
        timesteps=actor.timesteps,
    )
