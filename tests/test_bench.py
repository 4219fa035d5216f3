"""The speed benchmark times a new photo every call: 8 orientations, each a different image."""
import numpy as np

from analyzer import bench


def test_the_eight_orientations_are_eight_different_photos_of_the_same_pixels():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    views = bench._orientations(img)
    assert len(views) == 8
    assert sum(v.shape[:2] == (30, 40) for v in views) == 4 and sum(v.shape[:2] == (40, 30) for v in views) == 4
    keys = {v.tobytes() + bytes(v.shape[:2]) for v in views}
    assert len(keys) == 8  # no call sees the previous photo again
    for v in views:
        assert v.flags.c_contiguous
        assert np.array_equal(np.sort(v.reshape(-1, 3), axis=0), np.sort(img.reshape(-1, 3), axis=0))


def test_a_short_bench_runs_and_reports_every_ratio():
    r = bench.run_bench(repeat=1)
    for name in ("measure_path", "measure_array", "compare_paths"):
        assert r[f"{name}_ratio"] > 0 and r[f"{name}_s"] > 0
    assert 0 < r["decode_reused_s"] <= 2 * r["decode_s"]  # the buffer kept between calls is filled, not skipped
