"""Relief's measurement library: skin relief from ordinary photos.

Data flow (one module per step)::

    loading -> quality -> colour (pigment vs shading) -> relief (bands, areal parameters)
            -> scars (pits and pores) -> registration -> comparison (+ consistency)

Public API
----------
load_image(path)                       -> float32 RGB array in [0, 1]
measure(image_or_path, *, px_per_mm=None, roi=None, regions=None) -> Measurement
compare(baseline, followup, *, px_per_mm=None, regions=None)     -> Comparison
areal_parameters(height_mm, *, px_per_mm)          -> dict of ISO 25178 parameters
METRICS                                # the registry: name, unit, band, meaning
"""
from .errors import ImageError, OptionError, ReliefError
from .registry import ALGORITHM_VERSION, BANDS, METRICS, metric

__all__ = [
    "ALGORITHM_VERSION", "BANDS", "METRICS", "metric",
    "ReliefError", "ImageError", "OptionError",
]

# The public functions live in modules named by concern (measurement, comparison), never in modules of the same
# name, so ``analyzer.measure`` is always the function.
from .areal import areal_parameters  # noqa: E402
from .comparison import Comparison, RegistrationError, compare  # noqa: E402
from .loading import load_image, read_image  # noqa: E402
from .measurement import Measurement, measure  # noqa: E402

__all__ += ["areal_parameters", "Comparison", "RegistrationError", "compare", "load_image", "read_image",
            "Measurement", "measure"]
