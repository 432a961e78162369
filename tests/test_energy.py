"""Energy accounting: hand counts on a tiny PopSAN whose spikes are known in advance."""

from __future__ import annotations

import pytest
import torch

from aolo.policies.energy import (
    E_AC_PJ,
    E_MAC_PJ,
    ActorEnergy,
    mlp_actor_energy,
    mlp_energy_nj,
    mlp_macs,
    popsan_energy_nj,
    snn_energy_nj,
)
from aolo.policies.popsan import PopSANActor

torch.set_num_threads(1)


def test_constants_are_horowitz_45nm() -> None:
    assert (E_MAC_PJ, E_AC_PJ) == (4.6, 0.9)


def test_mlp_macs_by_hand() -> None:
    # HalfCheetah-sized actor mean path: 17*256 + 256*256 + 256*6.
    assert mlp_macs([17, 256, 256, 6]) == 4352 + 65536 + 1536 == 71424
    assert mlp_energy_nj([17, 256, 256, 6]) == pytest.approx(71424 * 4.6 / 1000, rel=1e-12)
    energy = mlp_actor_energy([5, 256, 256, 4])
    assert energy.macs == 5 * 256 + 256 * 256 + 256 * 4
    assert (energy.synops, energy.neuron_updates, energy.neuron_nj) == (0.0, 0.0, 0.0)


def _tiny_actor() -> PopSANActor:
    """obs 1 -> encoder 2 -> LIF 2 -> output 2 (act 1 x pop 2), T = 5, with wired-in spikes.

    At obs = 0: encoder neuron 0 has stimulation exactly 1 and fires on all 5 steps, neuron 1
    (field at 100) never fires; hidden neuron 0 (weight 1 from encoder 0) fires on all 5 steps,
    hidden neuron 1 (all weights 0) never; likewise output neuron 0 fires 5 times, neuron 1 never.
    At obs = 50 no field is stimulated and nothing fires.
    """
    actor = PopSANActor(1, 1, hidden=(2,), pop_in=2, pop_out=2, timesteps=5)
    with torch.no_grad():
        actor.encoder.mean.copy_(torch.tensor([[[0.0, 100.0]]]))
        for fc in actor.fc:
            fc.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
            fc.bias.zero_()
    return actor


def test_tiny_network_spikes_are_as_wired() -> None:
    _, counts = _tiny_actor().forward_with_spikes(torch.tensor([[0.0], [50.0]]))
    expected = torch.tensor([[5.0, 0.0], [0.0, 0.0]])
    for layer_counts in counts:
        assert torch.equal(layer_counts, expected)


def test_popsan_energy_by_hand() -> None:
    actor = _tiny_actor()
    one = popsan_energy_nj(actor, torch.tensor([[0.0]]))
    # Real-valued MACs: 2 encoder fields x 3 + decoder 1 action x 2 rates = 8.
    # Synaptic ops: 5 encoder spikes x fan-out 2 + 5 hidden spikes x fan-out 2 = 20.
    # Neuron updates: (2 encoder + 4 LIF) x 5 steps = 30, costing
    #   2 x 5 x 0.9 pJ (encoder) + 4 x 5 x (2 x 4.6 + 0.9) pJ (LIF) = 9 + 202 = 211 pJ.
    # Total: 8 x 4.6 + 20 x 0.9 + 211 = 36.8 + 18 + 211 = 265.8 pJ.
    assert (one.macs, one.synops, one.neuron_updates) == (8.0, 20.0, 30.0)
    assert one.neuron_nj == pytest.approx(0.211, rel=1e-12)
    assert one.nj_per_decision == pytest.approx(0.2658, rel=1e-12)

    # Averaged per decision: the silent second observation halves the synaptic ops only.
    two = popsan_energy_nj(actor, torch.tensor([[0.0], [50.0]]).numpy(), extra_real_macs=2)
    assert (two.macs, two.synops, two.neuron_updates) == (10.0, 10.0, 30.0)
    assert two.nj_per_decision == pytest.approx((10 * 4.6 + 10 * 0.9 + 211) / 1000, rel=1e-12)


def test_snn_energy_formula() -> None:
    energy = snn_energy_nj(
        real_macs=100,
        presynaptic_spikes=[10.0, 4.0],
        fan_outs=[256, 60],
        lif_neurons=316,
        encoder_neurons=50,
        timesteps=5,
    )
    neuron_pj = 5 * (316 * 10.1 + 50 * 0.9)
    assert energy == ActorEnergy(
        nj_per_decision=pytest.approx((100 * 4.6 + (2560 + 240) * 0.9 + neuron_pj) / 1000),
        macs=100.0,
        synops=2800.0,
        neuron_updates=1830.0,
        neuron_nj=pytest.approx(neuron_pj / 1000),
    )
    with pytest.raises(ValueError):
        snn_energy_nj(
            real_macs=0,
            presynaptic_spikes=[1.0],
            fan_outs=[],
            lif_neurons=1,
            encoder_neurons=1,
            timesteps=1,
        )
