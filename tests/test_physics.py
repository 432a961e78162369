"""The carbon model against hand-computed values (docs/design.md §3.6) and the 38.901 / fading formulas."""

import math

import numpy as np
import pytest
from scipy.special import j0

from aolo.envs import channel
from aolo.envs.config import RadioConfig, ServiceConfig
from aolo.envs.physics import InferenceCoefficients, request_outcomes, tokens_for_qoe
from aolo.envs.serving import get_serving_profile
from aolo.errors import AoloError, FadingTraceError

REL = 1e-6


def test_worked_example_matches_hand_computation():
    """docs/design.md §3.6, every number computed by hand below from the formulas, not from the code."""
    # 3-D distance 300 m, h_BS 25 m, h_UT 1.5 m -> 2-D distance
    d3 = 300.0
    d2 = math.sqrt(d3**2 - 23.5**2)
    pl_hand = 13.54 + 39.08 * math.log10(300.0) + 20 * math.log10(3.5)  # NLOS > LOS here
    pl = float(channel.pathloss_db(np.array([d2]), scenario="uma", link_state="nlos", carrier_ghz=3.5)[0])
    assert pl == pytest.approx(pl_hand, rel=REL)
    assert pl == pytest.approx(121.23, abs=0.005)

    b_u = 20e6 / 8
    noise_w = 10 ** ((-174 + 10 * math.log10(b_u) + 7 - 30) / 10)
    gain = 10 ** (-pl_hand / 10)
    rate_hand = b_u * math.log2(1 + 2.0 * gain / noise_w)
    airtime_hand = 200 * 8000 / rate_hand
    e_inf_hand = 1.2 * 1.2 * (0.023 * 1000 + 0.107 * 200)  # e_dec net of the measured prefill share
    e_comm_hand = ((130 - 75) / 8 + 4.7 * 2.0) * airtime_hand
    q_hand = 1 - math.exp(-3 * 200 / 250)

    radio = RadioConfig(fading_average="instantaneous")  # the example's |h|² = 1 is one fading draw
    service = ServiceConfig(embodied=False)
    inference = InferenceCoefficients(
        prefill_j_per_token=0.023,
        decode_j_per_token=0.107,
        overhead=1.2 * 1.2,
        ttft_overhead_s=0.05,
        prefill_s_per_token=3.2e-5,
        itl_s=0.0115,
        gpu_share=1 / 64,
        embodied_g_per_gpu_s=0.0,
    )
    out = request_outcomes(
        kappa=np.array([200.0]),
        prompt_tokens=np.array([1000.0]),
        ref_tokens=np.array([250.0]),
        power_w=np.array([2.0]),
        channel_gain=np.array([gain]),
        noise_w=float(channel.noise_power_w(b_u, 7.0)),
        interference_w=0.0,
        ci_datacenter_g_per_kwh=9.0,
        ci_cell_g_per_kwh=700.0,
        users_in_cell=8,
        bandwidth_per_user_hz=b_u,
        inference=inference,
        radio=radio,
        service=service,
    )
    assert out.rate_bps[0] == pytest.approx(rate_hand, rel=REL)
    assert out.airtime_s[0] == pytest.approx(airtime_hand, rel=REL)
    assert out.energy_inference_j[0] == pytest.approx(e_inf_hand, rel=REL)
    assert out.energy_comm_j[0] == pytest.approx(e_comm_hand, rel=REL)
    assert out.carbon_inference_g[0] == pytest.approx(e_inf_hand / 3.6e6 * 9.0, rel=REL)
    assert out.carbon_comm_g[0] == pytest.approx(e_comm_hand / 3.6e6 * 700.0, rel=REL)
    assert out.carbon_embodied_g[0] == 0.0
    assert out.qoe[0] == pytest.approx(q_hand, rel=REL)
    # and the rounded figures quoted in docs/design.md §3.6
    assert rate_hand / 1e6 == pytest.approx(12.41, abs=0.005)
    assert airtime_hand == pytest.approx(0.129, abs=0.0005)
    assert e_inf_hand == pytest.approx(63.9, abs=0.05)
    assert e_comm_hand == pytest.approx(2.10, abs=0.005)
    assert out.carbon_inference_g[0] == pytest.approx(0.00016, abs=5e-6)
    # the example's e_dec is the default profile's at b = 64 under the default (net) prefill accounting
    net = InferenceCoefficients.build(get_serving_profile("llama-3.1-8b-h100"), 64, ServiceConfig())
    assert net.decode_j_per_token == pytest.approx(0.107, abs=5e-4)
    assert out.carbon_comm_g[0] == pytest.approx(0.00041, abs=5e-6)


def test_embodied_share_is_gpu_seconds_times_rate():
    # H100 slot: (1312 kg HGX H100 baseboard + 3000 kg host server) / 8 GPUs over 5 years = 539 kg / 43 800 h
    g_per_gpu_hour = 539_000.0 / 43_800.0
    assert g_per_gpu_hour == pytest.approx(12.306, abs=5e-4)
    profile = get_serving_profile("llama-3.1-8b-h100")
    inf = InferenceCoefficients.build(profile, 64, ServiceConfig())
    t_inf = 0.05 + 3.2e-5 * 1000 + profile.inter_token_latency_s(64) * 200
    assert inf.latency_s(1000, 200) == pytest.approx(t_inf, rel=REL)
    assert inf.embodied_g(t_inf) == pytest.approx(g_per_gpu_hour / 3600 * t_inf * 1 / 64, rel=REL)
    # the 70B profile holds four H100 slots of the same server: 4 × 12.31 g per replica-hour, shared by the batch
    big = get_serving_profile("llama-3.1-70b-4xh100")
    inf70 = InferenceCoefficients.build(big, 64, ServiceConfig())
    assert inf70.embodied_g(1.0) == pytest.approx(g_per_gpu_hour / 3600 * 4 / 64, rel=REL)
    # an explicit rate still overrides the profile's
    inf12 = InferenceCoefficients.build(profile, 64, ServiceConfig(embodied_g_per_gpu_hour=12.0))
    assert inf12.embodied_g(t_inf) == pytest.approx(12.0 / 3600 * t_inf / 64, rel=REL)


def test_prefill_is_charged_once():
    """ML.ENERGY's e_dec already holds its own prompts' prefill; ``net`` removes that share (docs/design.md §3.4)."""
    profile = get_serving_profile("llama-3.1-8b-h100")
    share_hand = 0.023 * 200 / 397  # e_pre · L_p,ref / L_out,ref = 0.01159 J per output token
    coef = {
        mode: InferenceCoefficients.build(profile, 64, ServiceConfig(prefill_accounting=mode))
        for mode in ("net", "additive", "measured")
    }
    assert coef["additive"].decode_j_per_token == pytest.approx(0.1186, rel=REL)
    assert coef["net"].decode_j_per_token == pytest.approx(0.1186 - share_hand, rel=REL)
    assert coef["net"].prefill_j_per_token == coef["additive"].prefill_j_per_token == 0.023
    assert coef["measured"].prefill_j_per_token == 0.0
    # Azure conversation median request: L_p = 1020, kappa = 129; GPU energy (overhead 1.44 divided out)
    gpu_j = {m: c.energy_j(1020, 129) / 1.44 for m, c in coef.items()}
    assert gpu_j["additive"] == pytest.approx(23.46 + 129 * 0.1186, rel=REL)  # 38.76 J
    assert gpu_j["net"] == pytest.approx(23.46 + 129 * (0.1186 - share_hand), rel=REL)  # 37.26 J
    assert gpu_j["additive"] - gpu_j["net"] == pytest.approx(129 * share_hand, rel=REL)  # the double count
    assert gpu_j["measured"] == pytest.approx(129 * 0.1186, rel=REL)
    # a request exactly like the measured runs' mean costs what was measured: e_dec · L_out,ref
    assert coef["net"].energy_j(200, 397) / 1.44 == pytest.approx(0.1186 * 397, rel=REL)
    # the net figure stays positive at every measured batch of both profiles
    for p in (profile, get_serving_profile("llama-3.1-70b-4xh100")):
        assert min(p.decode_net_j_per_token(b) for b in p.batch_sizes) > 0.0
    with pytest.raises(AoloError, match="service.prefill_accounting"):
        ServiceConfig(prefill_accounting="twice").validate()


def test_serving_profile_interpolates_measured_points_only():
    p = get_serving_profile("llama-3.1-8b-h100")
    assert p.decode_energy_j_per_token(64) == pytest.approx(0.1186)
    mid = p.decode_energy_j_per_token(math.sqrt(64 * 96))  # halfway in log(batch)
    assert mid == pytest.approx((0.1186 + 0.1029) / 2)
    with pytest.raises(ValueError, match="outside the measured range"):
        p.decode_energy_j_per_token(4)
    assert get_serving_profile("llama-3.1-70b-4xh100").decode_energy_j_per_token(64) == pytest.approx(0.7972)


@pytest.mark.parametrize(
    "scenario,state,d2,expected",
    [
        # UMa LOS below the breakpoint (d'_BP = 4·24·0.5·3.5e9/c = 560.4 m): 28 + 22 log d3 + 20 log fc
        ("uma", "los", 100.0, 28.0 + 22 * math.log10(math.hypot(100, 23.5)) + 20 * math.log10(3.5)),
        # UMa LOS beyond the breakpoint
        (
            "uma",
            "los",
            1000.0,
            28.0
            + 40 * math.log10(math.hypot(1000, 23.5))
            + 20 * math.log10(3.5)
            - 9 * math.log10((4 * 24 * 0.5 * 3.5e9 / 299_792_458.0) ** 2 + 23.5**2),
        ),
        ("uma", "nlos", 200.0, 13.54 + 39.08 * math.log10(math.hypot(200, 23.5)) + 20 * math.log10(3.5)),
        ("umi", "los", 50.0, 32.4 + 21 * math.log10(math.hypot(50, 8.5)) + 20 * math.log10(3.5)),
        ("umi", "nlos", 150.0, 35.3 * math.log10(math.hypot(150, 8.5)) + 22.4 + 21.3 * math.log10(3.5)),
    ],
)
def test_pathloss_equals_38901_formulas(scenario, state, d2, expected):
    assert channel.pathloss_db(np.array([d2]), scenario=scenario, link_state=state)[0] == pytest.approx(
        expected, rel=1e-9
    )


def test_nlos_is_never_below_los():
    d = np.linspace(10, 2000, 500)
    for sc in ("uma", "umi"):
        assert np.all(
            channel.pathloss_db(d, scenario=sc, link_state="nlos")
            >= channel.pathloss_db(d, scenario=sc, link_state="los")
        )


def test_rayleigh_fading_power_and_lag1_correlation():
    rng = np.random.default_rng(1)
    rho = channel.fading_correlation(speed_mps=30 / 3.6, carrier_ghz=3.5, step_s=0.01)
    assert rho == pytest.approx(j0(2 * np.pi * (30 / 3.6) * 3.5e9 / 299_792_458.0 * 0.01))
    h = channel.gauss_markov_fading(rng, 200, 500, rho)
    assert np.mean(np.abs(h) ** 2) == pytest.approx(1.0, abs=0.01)  # 1e5 samples: s.e. ≈ 0.003
    lag1 = np.mean(h[:, 1:] * np.conj(h[:, :-1])).real
    assert lag1 == pytest.approx(rho, abs=0.01)
    # |h|² is exponential: P(|h|² < 0.1) = 1 - e^-0.1
    assert np.mean(np.abs(h) ** 2 < 0.1) == pytest.approx(1 - math.exp(-0.1), abs=0.005)


def test_rician_k_is_recovered_by_moments():
    rng = np.random.default_rng(2)
    k_true = 10 ** (9 / 10)
    h = channel.gauss_markov_fading(rng, 2000, 100, 0.0, rician_k_linear=k_true)
    g = np.abs(h) ** 2
    assert g.mean() == pytest.approx(1.0, abs=0.01)
    # moment estimator: with m2 = E|h|², m4 = E|h|⁴, K = sqrt(2 m2² - m4) / (m2 - sqrt(2 m2² - m4))
    m2, m4 = g.mean(), (g**2).mean()
    root = math.sqrt(2 * m2**2 - m4)
    assert root / (m2 - root) == pytest.approx(k_true, rel=0.05)


def test_fading_trace_roundtrip_npz_and_csv(tmp_path):
    gains = np.array([[1.0, 0.5, 2.0], [0.1, 0.2, 0.3]])
    np.savez(tmp_path / "f.npz", gain=gains)
    assert np.array_equal(channel.FadingTrace.load(tmp_path / "f.npz").power_gain, gains)
    (tmp_path / "f.csv").write_text("user_0,user_1\n1.0,0.1\n0.5,0.2\n2.0,0.3\n")
    tr = channel.FadingTrace.load(tmp_path / "f.csv")
    assert np.array_equal(tr.power_gain, gains)
    assert np.array_equal(tr.window(2, 2, 2, wrap=True), [[2.0, 1.0], [0.3, 0.1]])  # wraps around when allowed
    with pytest.raises(FadingTraceError, match=r"f\.csv: the fading trace has 3 steps \(rows\) but the cell reads up"):
        tr.window(2, 2, 2)  # ... and not otherwise
    (tmp_path / "bad.csv").write_text("1.0,-0.1\nnan,0.2\n")
    with pytest.raises(ValueError, match="2 fading gains are negative or not finite"):
        channel.FadingTrace.load(tmp_path / "bad.csv")


def test_tokens_for_qoe_inverts_qoe():
    assert tokens_for_qoe(0.8, np.array(250.0), 3.0) == pytest.approx(-math.log(0.2) * 250 / 3)
