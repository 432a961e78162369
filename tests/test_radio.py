"""Radio realism (docs/design.md §3.2): the NR spectral-efficiency cap and the fading-averaged rate."""

import math

import numpy as np
import pytest
from scipy.integrate import quad

from aolo.envs import channel
from aolo.envs.config import RadioConfig

B_HZ = 2.5e6
NOISE_W = float(channel.noise_power_w(B_HZ, 7.0))


def test_near_user_rate_is_capped_at_the_nr_peak():
    radio = RadioConfig(fading_average="instantaneous")
    gain = 1e-7  # 70 dB path loss: SNR at 2 W is ~ 78 dB, log2(1 + SNR) ~ 26 bit/s/Hz uncapped
    rate = channel.delivery_rate_bps(B_HZ, 2.0, gain, NOISE_W, 0.0, radio)
    assert rate == pytest.approx(B_HZ * 7.4063)
    assert channel.shannon_rate_bps(B_HZ, 2.0, gain, NOISE_W) > 2.9 * rate  # the old model: ~22 bit/s/Hz
    # below the cap nothing changes
    far = 1e-13
    assert channel.delivery_rate_bps(B_HZ, 2.0, far, NOISE_W, 0.0, radio) == pytest.approx(
        B_HZ * math.log2(1 + 2.0 * far / NOISE_W)
    )


@pytest.mark.parametrize("snr_db", [-20.0, 0.0, 10.0, 20.0, 30.0])
def test_ergodic_spectral_efficiency_matches_numerical_integration(snr_db):
    s = 10 ** (snr_db / 10)
    eta = 7.4063
    hand, _ = quad(lambda x: min(math.log2(1 + s * x), eta) * math.exp(-x), 0, np.inf, limit=200)
    assert float(channel.ergodic_spectral_efficiency(s, eta)) == pytest.approx(hand, rel=1e-6)
    uncapped, _ = quad(lambda x: math.log2(1 + s * x) * math.exp(-x), 0, np.inf, limit=200)
    assert float(channel.ergodic_spectral_efficiency(s)) == pytest.approx(uncapped, rel=1e-6)


def test_very_low_snr_is_finite_and_close_to_the_linear_regime():
    s = 1e-4  # -40 dB: e^{1/s} overflows, the asymptotic branch must take over
    se = float(channel.ergodic_spectral_efficiency(s, 7.4063))
    assert se == pytest.approx(s / math.log(2), rel=1e-3)


def test_a_deep_fade_does_not_stretch_the_airtime_under_the_fading_average():
    """|h|² = 1e-4 on one draw: the instantaneous model takes > 1000x longer; the ergodic rate does not see it."""
    large_scale = 10 ** (-120 / 10)
    bits = 300 * 8000
    inst = RadioConfig(fading_average="instantaneous")
    erg = RadioConfig()
    airtime_fade = bits / channel.delivery_rate_bps(B_HZ, 2.0, large_scale * 1e-4, NOISE_W, 0.0, inst)
    airtime_mean = bits / channel.delivery_rate_bps(B_HZ, 2.0, large_scale, NOISE_W, 0.0, erg)
    assert airtime_fade > 60.0  # the old model: a minute for one spoken answer
    assert airtime_mean < 0.5
    coherence_s = 0.423 / channel.doppler_hz(erg.ue_speed_mps, erg.carrier_ghz)
    assert coherence_s == pytest.approx(0.043, abs=0.002)
    assert airtime_mean > 3 * coherence_s  # many coherence times: the rule's premise holds here


@pytest.mark.parametrize("average", ["ergodic", "instantaneous"])
def test_power_for_rate_inverts_the_delivery_rate(average):
    radio = RadioConfig(fading_average=average)
    gain = np.array([1e-12, 1e-11, 1e-10])
    rate = np.array([1e6, 5e6, 12e6])
    p = channel.power_for_rate_w(rate, B_HZ, gain, NOISE_W, 0.0, radio)
    assert channel.delivery_rate_bps(B_HZ, p, gain, NOISE_W, 0.0, radio) == pytest.approx(rate, rel=1e-6)
    above_cap = channel.power_for_rate_w(B_HZ * 7.5, B_HZ, 1e-9, NOISE_W, 0.0, radio)
    assert np.isinf(above_cap)


def test_radio_config_validates_the_new_fields():
    from aolo.errors import ConfigError

    with pytest.raises(ConfigError, match="radio.max_spectral_efficiency"):
        RadioConfig(max_spectral_efficiency=0.0).validate()
    with pytest.raises(ConfigError, match="radio.fading_average"):
        RadioConfig(fading_average="sometimes").validate()


def test_ergodic_spectral_efficiency_is_the_same_per_entry_on_every_path():
    """One array mixing entries that need the asymptotic series (SNR < -27 dB, or a cap fade past 500) with
    entries that do not gives, bit for bit, what each entry gives alone (the fast path of an all-moderate array)."""
    snr = 10 ** (np.array([-40.0, -30.0, -20.0, -5.0, 0.0, 10.0, 30.0]) / 10)
    for eta in (7.4063, np.inf):
        together = channel.ergodic_spectral_efficiency(snr, eta)
        alone = np.array([channel.ergodic_spectral_efficiency(s, eta) for s in snr])
        assert together.shape == snr.shape
        np.testing.assert_array_equal(together, alone)
        assert np.isfinite(together).all() and (np.diff(together) > 0).all()


def test_the_cap_changes_nothing_where_fades_reaching_it_are_rarer_than_e_minus_500():
    """Below ~ -4.7 dB mean SNR the fade ``x_c = (2^η - 1)/s`` that would reach the NR cap exceeds 500: the cap
    term ``e^{1/s} E1(1/s + x_c)`` is then under half an ulp of the first term, so the capped rate equals the
    uncapped one bit for bit (what lets the evaluation skip that term there)."""
    snr = 10 ** (np.linspace(-40.0, -4.8, 50) / 10)
    np.testing.assert_array_equal(
        channel.ergodic_spectral_efficiency(snr, 7.4063), channel.ergodic_spectral_efficiency(snr, np.inf)
    )
    near = 10 ** (np.array([10.0, 20.0]) / 10)  # where good fades reach the cap, it counts
    assert (channel.ergodic_spectral_efficiency(near, 7.4063) < channel.ergodic_spectral_efficiency(near, np.inf)).all()
