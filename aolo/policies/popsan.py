"""PopSAN: the population-coded spiking actor of Tang et al. (CoRL 2020), in plain tensor ops.

Pipeline for one observation batch ``obs`` of shape (B, obs_dim), T spiking timesteps:

1. **Population encoder** (plain torch). Each observation dimension i has ``pop_in`` neurons with a
   learnable Gaussian receptive field (mean mu_ik, std sigma_ik). The stimulation
   A = exp(-(o_i - mu_ik)^2 / (2 sigma_ik^2)) drives a non-leaky integrate-and-fire neuron
   (v += A; spike when v > 0.999; reset by subtraction): deterministic "regular" spikes, about
   floor(T * A) per neuron, with a straight-through gradient so mu and sigma are trained.
2. **Spiking MLP**: ``nn.Linear`` synapses into current-based LIF neurons (:class:`SynapticLIF`):
   c_t = 0.5 c_{t-1} + W x_t + b;  v_t = 0.75 v_{t-1} (1 - s_{t-1}) + c_t;  s_t = H(v_t - 0.5),
   with PopSAN's rectangular pseudo-gradient dS/dv = 1 for |v - 0.5| < 0.5. The last layer is the
   output population of ``act_dim * pop_out`` neurons.
3. **Population decoder**: output firing rates r = (1/T) sum_t s_t, then one linear readout per
   action dimension (a grouped ``Conv1d``): u_j = sum_k w_jk r_jk + b_j. For SAC, u is the
   pre-squash Gaussian mean.

All neuron states start at zero on every forward call; the actor is stateless across env steps.

The neuron update is written as plain tensor ops rather than with snntorch's ``snn.Synaptic``: the same
update (``alpha=0.5, beta=0.75, threshold=0.5, reset_mechanism="zero", reset_delay=False``, the rectangular
surrogate) gives bit-identical spikes, states and gradients (tests/test_popsan.py keeps ``snn.Synaptic`` as
the reference), without snntorch's per-call state bookkeeping (module attribute writes, a second surrogate call
for its delayed-reset signal, clamps), which made the SDRL actor 1.8-2.7x slower. Each layer's T steps (and
the encoder's) are further fused into one autograd node with the backward through time written out
(:class:`_SynapticSpikeTrain`): the same spikes bit for bit and the same gradients to float rounding, without
autograd's per-op graph; :class:`SteppedNeurons` keeps the op-by-op path as the reference.
Equations: Tang et al., "Deep Reinforcement Learning with Population-Coded Spiking Neural Network for
Continuous Control", CoRL 2020 (arXiv:2010.09635), and its code github.com/combra-lab/pop-spiking-deep-rl.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

#: Current decay d_c, voltage decay d_v and firing threshold V_th of the LIF neurons.
CURRENT_DECAY = 0.5
VOLTAGE_DECAY = 0.75
THRESHOLD = 0.5
#: Half-width of the rectangular pseudo-gradient window around the threshold.
SURROGATE_WINDOW = 0.5
#: Threshold of the deterministic (regular) encoder neurons.
ENCODER_THRESHOLD = 0.999


class _RectangularSpike(torch.autograd.Function):
    """Heaviside spike H(u) on u = v - V_th with the gradient 1 inside |u| < 0.5 and 0 outside."""

    @staticmethod
    def forward(ctx, u: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(u)
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> Tensor:  # type: ignore[override]
        (u,) = ctx.saved_tensors
        return grad_output * (u.abs() < SURROGATE_WINDOW).to(grad_output.dtype)


def rectangular_surrogate(u: Tensor) -> Tensor:
    """PopSAN's spike H(v - V_th) with the rectangular pseudo-gradient (also a snntorch ``spike_grad``)."""
    return _RectangularSpike.apply(u)


class _RegularSpikeTrain(torch.autograd.Function):
    """The encoder's T steps in one autograd node: v_t = v_{t-1} + A; s_t = H(v_t - 0.999); v_t -= 0.999 s_t.

    Backward with the straight-through spike (dS/dv = 1), written out over time: the gradient reaching the
    pre-reset voltage is dv_t = G_t + (1 - 0.999) dv_{t+1}, and dA = sum_t dv_t. The same gradient as the
    step-by-step autograd graph, without its per-op bookkeeping.
    """

    @staticmethod
    def forward(ctx, drive: Tensor, timesteps: int) -> Tensor:  # type: ignore[override]
        volt = torch.zeros_like(drive)
        spikes = []
        for _ in range(timesteps):
            volt = volt + drive
            spike = (volt > ENCODER_THRESHOLD).to(drive.dtype)
            volt = volt - ENCODER_THRESHOLD * spike
            spikes.append(spike)
        return torch.stack(spikes)

    @staticmethod
    def backward(ctx, grad_spikes: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        grad_volt = grad_spikes[-1]
        grad_drive = grad_volt
        for t in range(grad_spikes.shape[0] - 2, -1, -1):
            grad_volt = grad_spikes[t] + (1.0 - ENCODER_THRESHOLD) * grad_volt
            grad_drive = grad_drive + grad_volt
        return grad_drive, None


class _SynapticSpikeTrain(torch.autograd.Function):
    """A :class:`SynapticLIF` layer's T steps in one autograd node, from zero states: currents (T, ...) ->
    spikes (T, ...).

    Backward through time by hand. With m_t the pre-reset voltage, s_t the spike, g_t = 1[|m_t - 0.5| < 0.5]
    the rectangular pseudo-gradient and G_t the gradient on the spikes, the post-reset voltage
    v_t = m_t - s_t m_t feeds m_{t+1} = 0.75 v_t + c_{t+1}, so::

        dm_t = 0.75 dm_{t+1} ((1 - s_t) - m_t g_t) + G_t g_t;   dI_t = dc_t = dm_t + 0.5 dc_{t+1}

    which is what autograd computes through the step-by-step ops (tests/test_popsan.py checks both against
    each other and against snntorch) in two fused ops per step instead of a graph of about ten nodes.
    """

    @staticmethod
    def forward(ctx, current: Tensor) -> Tensor:  # type: ignore[override]
        # float ops only: on CPU a bool ``out=``, ``where`` or ``masked_fill`` step costs 1.5-2x these
        # without a gradient nothing is kept, so each step's voltage buffer is freed and reused (cache-hot)
        keep = ctx.needs_input_grad[0]
        syn = mem = torch.zeros_like(current[0])
        spikes, pre_reset = [], []
        for step_current in current:
            syn = CURRENT_DECAY * syn + step_current
            mem = VOLTAGE_DECAY * mem + syn
            spike = (mem > THRESHOLD).to(current.dtype)
            spikes.append(spike)
            if keep:
                pre_reset.append(mem)
            mem = mem - spike * mem
        spike_train = torch.stack(spikes)
        if keep:
            ctx.save_for_backward(spike_train, torch.stack(pre_reset))
        return spike_train

    @staticmethod
    def backward(ctx, grad_spikes: Tensor) -> Tensor:  # type: ignore[override]
        spikes, pre_reset = ctx.saved_tensors
        window = ((pre_reset - THRESHOLD).abs() < SURROGATE_WINDOW).to(grad_spikes.dtype)
        carry = (1.0 - spikes) - pre_reset * window  # dm_t / dv_t through the reset and the spike
        direct = grad_spikes * window
        grad_current = torch.empty_like(grad_spikes)
        grad_mem, grad_syn = direct[-1], direct[-1]
        grad_current[-1] = grad_syn
        for t in range(grad_spikes.shape[0] - 2, -1, -1):
            grad_mem = torch.addcmul(direct[t], grad_mem, carry[t], value=VOLTAGE_DECAY)
            grad_syn = torch.add(grad_mem, grad_syn, alpha=CURRENT_DECAY, out=grad_current[t])
        return grad_current


class PopulationEncoder(nn.Module):
    """Learnable Gaussian receptive fields + deterministic regular spike trains.

    Neuron order is observation-major: neuron ``i * pop_in + k`` is field k of observation dim i.
    """

    def __init__(
        self,
        obs_dim: int,
        pop_in: int,
        timesteps: int,
        mean_range: tuple[float, float],
        std: float,
    ) -> None:
        super().__init__()
        self.obs_dim, self.pop_in, self.timesteps = obs_dim, pop_in, timesteps
        lo, hi = mean_range
        means = torch.linspace(lo, hi, pop_in) if pop_in > 1 else torch.full((1,), (lo + hi) / 2)
        self.mean = nn.Parameter(means.expand(1, obs_dim, pop_in).clone())
        self.std = nn.Parameter(torch.full((1, obs_dim, pop_in), float(std)))

    @property
    def num_neurons(self) -> int:
        return self.obs_dim * self.pop_in

    def forward(self, obs: Tensor) -> Tensor:
        """(B, obs_dim) observations -> (T, B, obs_dim * pop_in) binary spike trains."""
        drive = torch.exp(-0.5 * (obs.unsqueeze(-1) - self.mean).pow(2) / self.std.pow(2))
        return _RegularSpikeTrain.apply(drive.reshape(obs.shape[0], self.num_neurons), self.timesteps)


class SynapticLIF(nn.Module):
    """One step of PopSAN's current-based LIF neuron, stateless (states in, states out)::

        c_t = 0.5 c_{t-1} + I_t;   v = 0.75 v_{t-1} + c_t;   s_t = H(v - 0.5);   v_t = v - s_t v

    The reset ``v - s v`` is snntorch's ``reset_mechanism="zero", reset_delay=False`` form: zero after a spike,
    with the gradient flowing through the (surrogate) spike. snntorch's delayed-reset term is always zero here
    (a returned voltage never exceeds the threshold), so it is left out.
    """

    def forward(self, current: Tensor, syn: Tensor, mem: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        syn = CURRENT_DECAY * syn + current
        mem = VOLTAGE_DECAY * mem + syn
        spike = _RectangularSpike.apply(mem - THRESHOLD)
        return spike, syn, mem - spike * mem

    def spike_train(self, current: Tensor) -> Tensor:
        """All T steps from zero states, fused: input currents (T, B, n) -> spikes (T, B, n)."""
        return _SynapticSpikeTrain.apply(current)


def snntorch_synaptic() -> nn.Module:
    """snntorch's ``snn.Synaptic`` with PopSAN's settings: the neuron :class:`SynapticLIF` reproduces step for step
    (the reference of tests/test_popsan.py and of the bench's pre-issue-22 actor)."""
    import snntorch as snn

    return snn.Synaptic(
        alpha=CURRENT_DECAY,
        beta=VOLTAGE_DECAY,
        threshold=THRESHOLD,
        spike_grad=rectangular_surrogate,
        reset_mechanism="zero",
        reset_delay=False,
    )


class SteppedNeurons(nn.Module):
    """Runs a one-step neuron (``SynapticLIF`` or snntorch's ``snn.Synaptic``) over T steps, one autograd op at a
    time: the reference path that :meth:`SynapticLIF.spike_train` must reproduce (tests, bench)."""

    def __init__(self, neuron: nn.Module) -> None:
        super().__init__()
        self.neuron = neuron

    def spike_train(self, current: Tensor) -> Tensor:
        syn = mem = current.new_zeros(current.shape[1:])
        spikes = []
        for step_current in current:
            spike, syn, mem = self.neuron(step_current, syn, mem)
            spikes.append(spike)
        return torch.stack(spikes)


class PopSANActor(nn.Module):
    """Population-coded spiking actor network (PopSAN) with :class:`SynapticLIF` neuron layers.

    Args:
        obs_dim: observation size (the input must be flat, shape (B, obs_dim)).
        act_dim: action size; the output population has ``act_dim * pop_out`` neurons.
        hidden: sizes of the hidden spiking layers.
        pop_in: encoder neurons per observation dimension.
        pop_out: output neurons per action dimension.
        timesteps: spiking timesteps T per decision.
        mean_range: span of the initial receptive-field means (observations are expected to be
            normalised into about this range).
        encoder_std: initial receptive-field standard deviation.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (256, 256),
        pop_in: int = 10,
        pop_out: int = 10,
        timesteps: int = 5,
        mean_range: tuple[float, float] = (-3.0, 3.0),
        encoder_std: float = math.sqrt(0.15),
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.pop_out, self.timesteps = pop_out, timesteps
        self.encoder = PopulationEncoder(obs_dim, pop_in, timesteps, mean_range, encoder_std)
        sizes = [self.encoder.num_neurons, *hidden, act_dim * pop_out]
        self.fc = nn.ModuleList(nn.Linear(n_in, n_out) for n_in, n_out in zip(sizes, sizes[1:], strict=False))
        self.lif = nn.ModuleList(SynapticLIF() for _ in self.fc)
        self.decoder = nn.Conv1d(act_dim, act_dim, pop_out, groups=act_dim)

    @property
    def layer_sizes(self) -> list[int]:
        """Neurons per population: [encoder, *hidden, output]."""
        return [self.encoder.num_neurons] + [fc.out_features for fc in self.fc]

    def population_rates(self, obs: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Run the T spiking steps.

        Returns:
            The output population's firing rates, shape (B, act_dim * pop_out), differentiable;
            and the spike count of every neuron summed over T, one (B, n) tensor per population
            (encoder, hidden layers, output), detached: the input of the energy accounting.
        """
        x = self.encoder(obs)  # (T, B, n_in) spikes
        counts = [x.detach().sum(0)]
        steps, batch = x.shape[0], x.shape[1]
        # Layer by layer: a layer's input currents for all T steps are one matmul; only the neuron
        # dynamics run over time. Same equations as the step-by-step loop (no recurrence across layers).
        for fc, lif in zip(self.fc, self.lif, strict=False):
            x = lif.spike_train(fc(x.reshape(steps * batch, -1)).view(steps, batch, -1))
            counts.append(x.detach().sum(0))
        return x.mean(0), counts

    def decode(self, rates: Tensor) -> Tensor:
        """Output population rates (B, act_dim * pop_out) -> per-action readout (B, act_dim)."""
        return self.decoder(rates.view(-1, self.act_dim, self.pop_out)).view(-1, self.act_dim)

    def forward(self, obs: Tensor) -> Tensor:
        """(B, obs_dim) -> (B, act_dim) decoder output (the pre-squash mean for SAC)."""
        return self.decode(self.population_rates(obs)[0])

    def forward_with_spikes(self, obs: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Like ``forward``, plus the per-neuron spike counts of ``population_rates``."""
        rates, counts = self.population_rates(obs)
        return self.decode(rates), counts
