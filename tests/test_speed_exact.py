"""The speed-ups change no number: shortcuts against the plain computation they replace."""
import cv2
import numpy as np
import pytest
import scipy.fft

from analyzer import filters, synth
from analyzer.areal import _hybrid
from analyzer.card import _gray
from analyzer.comparison import _BOOTSTRAP, bootstrap_weights, change_interval
from analyzer.measurement import analyse, valid_mask
from analyzer.scars import _components
from analyzer.relief import _border_mask, _integration_filter, measured_mask, to_analysis_grid


@pytest.mark.parametrize("kind", ["normal", "ties", "sorted", "skewed", "float64", "small"])
@pytest.mark.parametrize("n", [20_000, 20_001, 270_001])
def test_bracketed_median_is_np_median(kind, n):
    rng = np.random.default_rng(n + len(kind))
    x = {"normal": lambda: rng.standard_normal(n).astype(np.float32),
         "ties": lambda: np.round(3 * rng.standard_normal(n)).astype(np.float32),
         "sorted": lambda: np.sort(rng.standard_normal(n)).astype(np.float32),
         "skewed": lambda: rng.standard_exponential(n).astype(np.float32) ** 3,
         "float64": lambda: rng.standard_normal(n),
         "small": lambda: rng.standard_normal(n % 1000 + 5).astype(np.float32)}[kind]()
    assert filters.median(x) == np.median(x).astype(x.dtype)


def test_masked_gaussian_remembers_only_the_same_mask():
    rng = np.random.default_rng(0)
    img = rng.random((120, 160)).astype(np.float32)
    mask = np.ones(img.shape, bool)
    mask[30:60, 40:90] = False

    def direct(m, s):
        w = m.astype(np.float32)
        return filters._blur(img * w, s) / np.maximum(filters._blur(w, s), 1e-6)

    first = filters.gaussian(img, 4.0, mask=mask)
    assert np.array_equal(first, direct(mask, 4.0))
    assert np.array_equal(filters.gaussian(img, 4.0, mask=mask.copy()), first)  # remembered: same values
    mask[0:20, 0:20] = False  # the same array, changed in place: a new normaliser
    changed = filters.gaussian(img, 4.0, mask=mask)
    assert np.array_equal(changed, direct(mask, 4.0))
    assert not np.array_equal(changed, first)
    many = filters.gaussians([img, 2 * img], [1.5, 4.0], mask=mask)
    assert np.array_equal(many[1][1], filters.gaussian(2 * img, 4.0, mask=mask))


def test_measured_mask_is_a_fresh_copy_of_the_erosion():
    valid = np.ones((200, 260), bool)
    valid[80:120, 100:150] = False
    a = measured_mask(valid, px_per_mm=10.0)
    border = max(2, int(round(filters.size_to_sigma_px(5.0, 10.0) * 0.75)))
    assert np.array_equal(a, _border_mask(valid, border))
    a[:] = False  # the caller's copy: the next call is unaffected
    assert np.array_equal(measured_mask(valid, px_per_mm=10.0), _border_mask(valid, border))
    valid[10:30, 10:30] = False
    assert np.array_equal(measured_mask(valid, px_per_mm=10.0), _border_mask(valid, border))


def test_change_interval_with_weights_drawn_beforehand():
    rng = np.random.default_rng(3)
    b, f = rng.random((300, 400)) ** 2, rng.random((300, 400)) ** 2
    mask = np.ones(b.shape, bool)
    mask[:, :60] = False
    plain = change_interval(b, f, mask, px_per_mm=10.0)
    assert np.all(np.isfinite(plain)) and plain[1] > 0
    n_tiles = (300 // 50) * (400 // 50) - 6  # 5 mm tiles; the first column of tiles is unmeasured: dropped
    w = bootstrap_weights(n_tiles)
    assert w.shape == (_BOOTSTRAP, n_tiles)
    assert change_interval(b, f, mask, px_per_mm=10.0, weights=w) == plain
    # weights of the wrong size are not used
    assert change_interval(b, f, mask, px_per_mm=10.0, weights=bootstrap_weights(n_tiles + 1)) == plain


def test_analyse_on_two_threads_equals_one():
    rgb = synth.render(synth.make_skin(seed=5, severity=0.6), synth.Capture(), seed=5)
    grid, gp = to_analysis_grid(rgb.astype(np.float32), px_per_mm=synth.Capture().px_per_mm)
    valid = valid_mask(grid, px_per_mm=gp)
    valid[:40, :60] = False
    one = analyse(grid, px_per_mm=gp, valid=valid, parallel=False)
    two = analyse(grid, px_per_mm=gp, valid=valid)
    assert one.metrics.keys() == two.metrics.keys()
    for k, v in one.metrics.items():
        assert (np.isnan(v) and np.isnan(two.metrics[k])) or v == two.metrics[k], k
    assert np.array_equal(one.separation.shading, two.separation.shading)
    assert one.pits.scars == two.pits.scars


@pytest.mark.parametrize("threads", [1, 2])
def test_grana_components_equal_opencv_default(threads):
    # scars._components uses Grana's algorithm for its speed; labels, stats and centroids must be the default's
    # (blobs of every size and touching diagonals, as the thresholded height maps give them)
    rng = np.random.default_rng(3)
    noise = cv2.GaussianBlur(rng.standard_normal((450, 600)).astype(np.float32), (0, 0), 2.0)
    before = cv2.getNumThreads()
    cv2.setNumThreads(threads)
    try:
        for level in np.quantile(noise, [0.05, 0.15, 0.5]):
            binary = noise < level
            fast = _components(binary)
            plain = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
            assert fast[0] == plain[0] > 10
            for a, b in zip(fast[1:], plain[1:]):
                assert np.array_equal(a, b)
    finally:
        cv2.setNumThreads(before)


def test_bootstrap_counts_are_resamples_with_replacement():
    for n in (1, 2, 7, 300):
        w = bootstrap_weights(n, seed=3)
        assert w.shape == (_BOOTSTRAP, n)
        assert np.all(w.sum(axis=1) == n) and np.all(w >= 0) and np.all(w == np.round(w))
    w = bootstrap_weights(5, seed=1)  # multinomial(5, 1/5): mean 1, variance 4/5 per tile
    assert w.mean() == pytest.approx(1.0)
    assert w.var(axis=0).mean() == pytest.approx(0.8, abs=0.08)
    assert np.array_equal(bootstrap_weights(50, seed=4), bootstrap_weights(50, seed=4))


def test_float32_integration_filter_matches_the_float64_expression():
    fh, fw, az, eps = 96, 130, 37.5, 0.25
    wy = (2 * np.pi * scipy.fft.fftfreq(fh))[:, None]
    wx = (2 * np.pi * scipy.fft.rfftfreq(fw))[None, :]
    wd = wx * np.cos(np.radians(az)) - wy * np.sin(np.radians(az))
    den = wd * wd + eps * eps * (wx * wx + wy * wy)
    den[0, 0] = 1.0
    ref = 1j * wd / den
    ref[0, 0] = 0.0
    got = _integration_filter(fh, fw, az, eps)
    assert got.dtype == np.complex64 and not got.flags.writeable and got[0, 0] == 0
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()


@pytest.mark.parametrize("shape", [(3, 3), (3, 40), (40, 3), (55, 600), (56, 600), (57, 600), (130, 300)])
def test_blocked_sdq_and_sdr_match_whole_map_differences(shape):
    rng = np.random.default_rng(sum(shape))
    z = np.cumsum(rng.standard_normal(shape), axis=1) * 1e-3
    z[rng.random(shape) < 0.1] = np.nan
    gx2 = (np.diff(z, axis=1) * 10.0) ** 2
    gy2 = (np.diff(z, axis=0) * 10.0) ** 2
    s = [np.sqrt(1 + a + b) for a in (gx2[:-1], gx2[1:]) for b in (gy2[:, :-1], gy2[:, 1:])]
    sdq = np.sqrt(np.nanmean(gx2) + np.nanmean(gy2))
    sdr = 100 * (0.25 * np.nanmean(sum(s)) - 1)
    got = _hybrid(z, 10.0, False)
    assert got["Sdq"] == pytest.approx(sdq, rel=1e-12) and got["Sdr"] == pytest.approx(sdr, rel=1e-9)


def test_card_gray_conversion_rounds_and_saturates():
    rgb = np.repeat(np.array([[-0.2, 0.25, 0.5, 1.0, 1.7, 0.4]], np.float32)[..., None], 3, axis=2)
    gray_f, gray = _gray(rgb)
    assert gray.dtype == np.uint8
    assert gray.tolist() == [[0, 64, 128, 255, 255, 102]]  # out of range saturates (not |-0.2| -> 51)
    assert gray_f.min() >= 0.0 and gray_f.max() <= 1.0
    rng = np.random.default_rng(0)
    rgb = rng.random((100, 100, 3)).astype(np.float32)
    old = np.clip(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    assert np.abs(_gray(rgb)[1].astype(int) - old).max() <= 1  # differs from round-half-up on exact ties only
