"""Relief's measurement library: skin relief from ordinary photos.

Data flow (one module per step)::

    loading -> quality -> colour (pigment vs shading) -> relief (bands, areal parameters)
            -> scars (pits and pores) -> registration -> compare

Public API
----------
load_image(path)                       -> float32 RGB array in [0, 1]
measure(image_or_path, *, px_per_mm=None, roi=None) -> Measurement
compare(baseline, followup, *, px_per_mm=None)     -> Comparison
areal_parameters(height_mm, *, px_per_mm)          -> dict of ISO 25178 parameters
METRICS                                # the registry: name, unit, band, meaning
"""
from .errors import ImageError, OptionError, ReliefError
from .registry import ALGORITHM_VERSION, BANDS, METRICS, metric

__all__ = [
    "ALGORITHM_VERSION", "BANDS", "METRICS", "metric",
    "ReliefError", "ImageError", "OptionError",
]

# The heavier modules are imported lazily so `import analyzer` stays fast for the CLI and the app.
_LAZY = {
    "load_image": ("loading", "load_image"),
    "areal_parameters": ("areal", "areal_parameters"),
    "measure": ("measure", "measure"),
    "Measurement": ("measure", "Measurement"),
    "compare": ("compare", "compare"),
    "Comparison": ("compare", "Comparison"),
}
__all__ += list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{mod}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'analyzer' has no attribute {name!r}")
