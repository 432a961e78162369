"""PopSANActor against a plain-torch restatement of the reference equations and against snntorch's Synaptic."""

from __future__ import annotations

import copy
import gc
import pickle
import weakref

import pytest
import torch
from torch import Tensor

from aolo.policies.popsan import PopSANActor, SteppedNeurons, SynapticLIF, snntorch_synaptic

torch.set_num_threads(1)

OBS_DIM, ACT_DIM, HIDDEN, POP_IN, POP_OUT, T = 5, 2, (32, 24), 10, 10, 5


# --- Reference: PopSAN (Tang et al., CoRL 2020) written out in plain torch --------------------------------
class _EncoderSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v: Tensor) -> Tensor:  # type: ignore[override]
        return (v > 0.999).float()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        return grad


class _LIFSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(v)
        return (v > 0.5).float()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (v,) = ctx.saved_tensors
        return grad * ((v - 0.5).abs() < 0.5).float()


def reference_forward(p: dict[str, Tensor], obs: Tensor, n_layers: int):
    """Returns (decoder output, encoder spikes [T], layer spikes [layer][T])."""
    batch = obs.shape[0]
    drive = torch.exp(-((obs[:, :, None] - p["encoder.mean"]) ** 2) / (2 * p["encoder.std"] ** 2))
    drive = drive.reshape(batch, -1)
    volt = torch.zeros_like(drive)
    enc = []
    for _ in range(T):
        volt = volt + drive
        enc.append(_EncoderSpike.apply(volt))
        volt = volt - 0.999 * enc[-1]
    sizes = [p[f"fc.{layer}.bias"].shape[0] for layer in range(n_layers)]
    cur = [torch.zeros(batch, n) for n in sizes]
    vol = [torch.zeros(batch, n) for n in sizes]
    spk = [torch.zeros(batch, n) for n in sizes]
    layer_spikes: list[list[Tensor]] = [[] for _ in sizes]
    for t in range(T):
        x = enc[t]
        for layer in range(n_layers):
            syn_in = torch.nn.functional.linear(x, p[f"fc.{layer}.weight"], p[f"fc.{layer}.bias"])
            cur[layer] = 0.5 * cur[layer] + syn_in
            vol[layer] = 0.75 * vol[layer] * (1.0 - spk[layer]) + cur[layer]
            spk[layer] = _LIFSpike.apply(vol[layer])
            layer_spikes[layer].append(spk[layer])
            x = spk[layer]
    rates = torch.stack(layer_spikes[-1]).sum(0) / T
    w = p["decoder.weight"][:, 0, :]  # (act_dim, pop_out), grouped conv: one readout per action
    out = (rates.view(batch, ACT_DIM, POP_OUT) * w).sum(-1) + p["decoder.bias"]
    return out, enc, layer_spikes


def _record_lif_spikes(actor: PopSANActor) -> list[list[Tensor]]:
    """Record every layer's spikes step by step (the layers' fused ``spike_train`` wrapped on this actor)."""
    record: list[list[Tensor]] = [[] for _ in actor.lif]
    for k, lif in enumerate(actor.lif):

        def recorded(current: Tensor, fused=lif.spike_train, k=k) -> Tensor:
            spikes = fused(current)
            record[k].extend(spikes.detach().unbind(0))
            return spikes

        lif.spike_train = recorded
    return record


def _make_actor(seed: int = 0, weight_gain: float = 1.0) -> PopSANActor:
    torch.manual_seed(seed)
    actor = PopSANActor(OBS_DIM, ACT_DIM, HIDDEN, pop_in=POP_IN, pop_out=POP_OUT, timesteps=T)
    with torch.no_grad():  # a larger gain makes every layer fire a lot, a gain of 1 sparsely
        for fc in actor.fc:
            fc.weight.mul_(weight_gain)
    return actor


@pytest.mark.parametrize("weight_gain", [1.0, 4.0])
def test_matches_reference_spike_for_spike_and_gradients(weight_gain: float) -> None:
    actor = _make_actor(seed=1, weight_gain=weight_gain)
    obs = torch.randn(64, OBS_DIM) * 1.5
    ref_params = {k: v.detach().clone().requires_grad_(True) for k, v in actor.named_parameters()}

    record = _record_lif_spikes(actor)
    out, counts = actor.forward_with_spikes(obs)
    ref_out, ref_enc, ref_layers = reference_forward(ref_params, obs, len(HIDDEN) + 1)

    assert torch.equal(actor.encoder(obs), torch.stack(ref_enc))
    for layer, ref_steps in enumerate(ref_layers):
        assert len(record[layer]) == T
        for t in range(T):
            assert torch.equal(record[layer][t], ref_steps[t]), (layer, t)
    total = sum(int(c.sum()) for c in counts[1:])
    assert total > 0, "the comparison must involve real hidden/output spikes"
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-6)

    # Spike counts returned for the energy accounting are the per-neuron sums over T.
    assert torch.equal(counts[0], torch.stack(ref_enc).sum(0))
    for layer, ref_steps in enumerate(ref_layers):
        assert torch.equal(counts[layer + 1], torch.stack(ref_steps).sum(0))

    proj = torch.randn_like(out)
    names = [k for k, _ in actor.named_parameters()]
    grads = torch.autograd.grad((out * proj).sum(), list(actor.parameters()))
    ref_grads = torch.autograd.grad((ref_out * proj).sum(), [ref_params[k] for k in names])
    for name, g, rg in zip(names, grads, ref_grads, strict=False):
        torch.testing.assert_close(g, rg, rtol=1e-5, atol=1e-5, msg=name)
    # Gradients reach the receptive fields and every synapse layer.
    assert all(g.abs().sum() > 0 for g in grads)


def test_stateless_batch_sizes_and_determinism() -> None:
    actor = _make_actor(seed=2, weight_gain=3.0)
    obs = torch.randn(16, OBS_DIM)
    with torch.no_grad():
        first = actor(obs)
        assert torch.equal(first, actor(obs)), "state leaked between calls"
        assert actor(obs[:1]).shape == (1, ACT_DIM)
        assert torch.equal(actor(obs[:3]), first[:3]), "batch rows must be independent"
        assert torch.equal(actor(obs), first)
    twin = _make_actor(seed=2, weight_gain=3.0)
    with torch.no_grad():
        assert torch.equal(twin(obs), first), "same seed, same actor"


def test_instances_do_not_interfere() -> None:
    a, b = _make_actor(seed=3, weight_gain=3.0), _make_actor(seed=4, weight_gain=3.0)
    obs_a, obs_b = torch.randn(8, OBS_DIM), torch.randn(5, OBS_DIM)
    with torch.no_grad():
        solo_a, solo_b = a(obs_a), b(obs_b)
        for _ in range(2):  # interleave calls of two actors with different batch sizes
            assert torch.equal(b(obs_b), solo_b)
            assert torch.equal(a(obs_a), solo_a)


def test_actor_is_collectable_after_backward() -> None:
    actors = [_make_actor(seed=s) for s in range(3)]
    ref = weakref.ref(actors[0])
    actors[0](torch.randn(2, OBS_DIM)).sum().backward()
    del actors
    gc.collect()
    assert ref() is None


def test_pickle_and_deepcopy_after_differentiable_forward() -> None:
    actor = _make_actor(seed=5, weight_gain=3.0)
    obs = torch.randn(4, OBS_DIM)
    expected = actor(obs)  # leaves a graph behind unless the neuron state is released
    for clone in (pickle.loads(pickle.dumps(actor)), copy.deepcopy(actor)):
        with torch.no_grad():
            assert torch.equal(clone(obs), expected.detach())
    state = actor.state_dict()
    restored = PopSANActor(OBS_DIM, ACT_DIM, hidden=HIDDEN, pop_in=POP_IN, pop_out=POP_OUT)
    restored.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(restored(obs), expected.detach())


def test_plain_neuron_is_snntorch_synaptic_step_for_step() -> None:
    torch.manual_seed(6)
    current = (torch.randn(T, 32, 48) * 1.5).requires_grad_(True)
    neurons = {"plain": SynapticLIF(), "snntorch": snntorch_synaptic()}
    states = {name: (torch.zeros(32, 48), torch.zeros(32, 48)) for name in neurons}
    spikes: dict[str, list[Tensor]] = {name: [] for name in neurons}
    for t in range(T):
        for name, neuron in neurons.items():
            spike, syn, mem = neuron(current[t], *states[name])
            states[name] = (syn, mem)
            spikes[name].append(spike)
        assert torch.equal(spikes["plain"][t], spikes["snntorch"][t]), t
        assert torch.equal(states["plain"][0], states["snntorch"][0]), t
        assert torch.equal(states["plain"][1], states["snntorch"][1]), t
    assert 0.05 < torch.stack(spikes["plain"]).mean() < 0.95, "the comparison needs spikes and silences"
    weights = torch.randn(T, 32, 48)
    grads = {
        name: torch.autograd.grad((torch.stack(spikes[name]) * weights).sum() + states[name][1].sum(), current)[0]
        for name in neurons
    }
    assert torch.equal(grads["plain"], grads["snntorch"])
    assert grads["plain"].abs().sum() > 0


@pytest.mark.parametrize("weight_gain", [1.0, 4.0])
def test_actor_with_snntorch_neurons_is_identical(weight_gain: float) -> None:
    actor = _make_actor(seed=7, weight_gain=weight_gain)
    reference = copy.deepcopy(actor)
    reference.lif = torch.nn.ModuleList(SteppedNeurons(snntorch_synaptic()) for _ in reference.fc)
    obs = torch.randn(64, OBS_DIM) * 1.5
    out, counts = actor.forward_with_spikes(obs)
    ref_out, ref_counts = reference.forward_with_spikes(obs)
    assert torch.equal(out, ref_out)
    for count, ref_count in zip(counts, ref_counts, strict=True):
        assert torch.equal(count, ref_count)
    assert sum(int(c.sum()) for c in counts[1:]) > 0
    grads = torch.autograd.grad(out.square().sum(), list(actor.parameters()))
    ref_grads = torch.autograd.grad(ref_out.square().sum(), list(reference.parameters()))
    for g, rg in zip(grads, ref_grads, strict=True):  # the fused backward sums in another order: float rounding
        torch.testing.assert_close(g, rg, rtol=1e-5, atol=1e-7)


def test_fused_spike_train_is_the_step_by_step_neuron() -> None:
    """The fused T-step layer (one autograd node, backward through time by hand) against the one-step neuron run
    op by op: the same spikes bit for bit, the same current gradients to float rounding, for every upstream
    gradient on the spikes — including currents that leave voltages inside and outside the surrogate window."""
    torch.manual_seed(8)
    current = (torch.randn(T, 32, 48) * 1.5).requires_grad_(True)
    fused = SynapticLIF().spike_train(current)
    stepped = SteppedNeurons(SynapticLIF()).spike_train(current)
    assert torch.equal(fused, stepped)
    assert 0.05 < fused.mean() < 0.95
    for upstream in (
        torch.randn(T, 32, 48),
        torch.ones(T, 32, 48),
        torch.zeros(T, 32, 48).index_fill_(0, torch.tensor([T - 1]), 1.0),
    ):
        grad = torch.autograd.grad(fused, current, upstream, retain_graph=True)[0]
        ref = torch.autograd.grad(stepped, current, upstream, retain_graph=True)[0]
        torch.testing.assert_close(grad, ref, rtol=1e-6, atol=1e-6)
        assert grad.abs().sum() > 0
