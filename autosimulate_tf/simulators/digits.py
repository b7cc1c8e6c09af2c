"""Procedural handwritten digits: a non-differentiable numpy stroke renderer (DESIGN.md section 5).

The sim-to-real benchmark: psi is the style distribution of a procedural renderer of
the digits 0-9, and the real data are the handwritten UCI digits bundled with
scikit-learn (`autosimulate_tf.data.digits.uci_digits_real_data`).

A latent is one digit's full description: its class, its style variant (e.g. a 7
with or without a bar), ten continuous style factors and a psi-free `noise_seed`.
`render` draws the digit's stroke skeleton, distorts it smoothly, shears, rotates
and stretches it, size-normalises and centres it in a 32x32 box the way the UCI
bitmaps were made, rasterises it with the latent's stroke thickness, flips a few
pixels (salt and pepper), and counts the set pixels in 4x4 blocks: an 8x8 image
with integer values 0..16, exactly the format of `sklearn.datasets.load_digits`.

Everything `render` consumes is in the latent. The only randomness inside `render`
(the shape of the distortion field and which pixels flip) is drawn from a numpy
generator seeded by the bits of `noise_seed ~ Uniform(0, 1)`, whose density does not
depend on psi, so rendering is a deterministic function of the latent and the
score-function estimator sees every psi-dependent choice through `log_prob`.
"""

import math
from typing import NamedTuple

import gin
import numpy as np

from autosimulate_tf.simulators.digit_glyphs import GLYPHS
from autosimulate_tf.simulators.digit_style import MASKED_LOGIT, StyleDigitsSimulator  # noqa: F401 (re-exported)

BOX_SIZE = 32  # side of the binary bitmap, in pixels (as in UCI optdigits)
BLOCK_SIZE = 4  # 4x4 blocks of the bitmap are counted into one 8x8 value (0..16)
OBSERVATION_SIZE = BOX_SIZE // BLOCK_SIZE
MAX_VARIANTS = 3  # style variants per digit; digits with fewer are padded with masked logits
NUM_DISTORTION_MODES = 3  # random sinusoidal modes per displacement axis
DISTORTION_FREQUENCY = 1.0  # std of a mode's spatial frequency, in cycles per glyph height
# The stroke skeletons (`GLYPHS`, a data table) live in `digit_glyphs`.
NUM_CLASSES = len(GLYPHS)
VARIANT_NAMES = tuple(f"{digit}_{name}" for digit, variants in GLYPHS.items() for name, _ in variants)
VARIANT_COUNTS = tuple(len(GLYPHS[digit]) for digit in range(NUM_CLASSES))


class _CompiledGlyph(NamedTuple):
    points: np.ndarray  # [P, 2], centred on the skeleton's bounding box
    segment_start: np.ndarray  # [S] index into points
    segment_end: np.ndarray  # [S]
    length: float  # total skeleton length, glyph units (glyph height 1)


def _compile(strokes) -> _CompiledGlyph:
    """Concatenates strokes into one point array plus segment index pairs (no segment joins two strokes)."""
    points, starts, offset = [], [], 0
    for stroke in strokes:
        points.append(stroke)
        starts.append(np.arange(offset, offset + len(stroke) - 1))
        offset += len(stroke)
    points = np.concatenate(points)
    # Centring once here makes shear and rotation act about the glyph's middle.
    points = points - 0.5 * (points.min(axis=0) + points.max(axis=0))
    starts = np.concatenate(starts)
    length = float(np.sum(np.linalg.norm(points[starts + 1] - points[starts], axis=1)))
    return _CompiledGlyph(points, starts, starts + 1, length)


_COMPILED = {digit: tuple(_compile(strokes) for _, strokes in variants) for digit, variants in GLYPHS.items()}
# The skeleton length at which `ink_exponent` leaves the stroke width unchanged: about the median
# glyph (a plain 1 is 1.0, an 8 about 3.2).
REFERENCE_SKELETON_LENGTH = 2.5
_PIXEL_CENTRES = np.arange(BOX_SIZE, dtype=np.float32) + 0.5


class Factor(NamedTuple):
    """One continuous style factor: `latent ~ Normal(mean, exp(log_scale))`, mean and log_scale in psi.

    The untuned default matches the first two moments of a uniform distribution on
    `default_range` in natural units (`log_space=False`), or on its logs (`log_space=True`,
    for positive, multiplicative factors whose latent is the log of the natural value).
    """

    name: str
    unit: str  # of the natural value
    default_range: tuple  # the hand-set (low, high), natural units
    log_space: bool
    mean_bounds: tuple  # random-search box of the mean, latent units
    scale_bounds: tuple  # random-search box of the standard deviation exp(log_scale), latent units
    clip: tuple  # the renderer clips the natural value to this, so that no psi can break a render


_ln = math.log  # keeps the table below one factor per line
FACTORS = (
    Factor("rotation", "degrees, counter-clockwise", (-15.0, 15.0), False, (-30.0, 30.0), (0.5, 30.0), (-180.0, 180.0)),
    Factor("shear", "x offset per unit height", (-0.3, 0.3), False, (-0.6, 0.6), (0.01, 0.6), (-1.5, 1.5)),
    Factor("log_size", "longest side / 32 px", (0.7, 1.0), True, (_ln(0.5), _ln(1.1)), (0.005, 0.4), (0.3, 1.25)),
    Factor("log_aspect", "width multiplier", (0.8, 1.2), True, (_ln(0.6), _ln(1.6)), (0.005, 0.4), (0.33, 3.0)),
    Factor("shift_x", "px, after centring", (-2.0, 2.0), False, (-3.0, 3.0), (0.05, 3.0), (-8.0, 8.0)),
    Factor("shift_y", "px, after centring", (-2.0, 2.0), False, (-3.0, 3.0), (0.05, 3.0), (-8.0, 8.0)),
    Factor("log_thickness", "stroke width, px at 32x32", (1.5, 4.0), True, (0.0, _ln(8.0)), (0.01, 0.8), (1.0, 10.0)),
    Factor("log_distortion", "RMS px, 32-px-tall glyph", (0.5, 2.0), True, (_ln(0.1), _ln(5.0)), (0.01, 1.5), (0, 6)),
    Factor("log_noise", "pixel flip probability", (0.001, 0.01), True, (_ln(1e-4), _ln(0.05)), (0.01, 1.5), (0, 0.5)),
    Factor("ink_exponent", "width x (2.5/skeleton length)^e", (-0.1, 0.1), False, (-0.5, 1.5), (0.01, 1.0), (-2, 2)),
)
FACTOR_NAMES = tuple(factor.name for factor in FACTORS)


def default_factor_moments(factor: Factor) -> tuple[float, float]:
    """`(mean, std)` of the untuned default of `factor`, in latent units (uniform-moment matching)."""
    low, high = factor.default_range
    if factor.log_space:
        low, high = math.log(low), math.log(high)
    return 0.5 * (low + high), (high - low) / math.sqrt(12.0)


def _generator(rng_or_seed) -> np.random.Generator:
    """A numpy generator from a generator, an int seed, or a float `noise_seed` latent.

    A float is hashed through its float32 bit pattern, so the same latent always
    gives the same generator whether it arrives as float32 or float64.
    """
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    value = np.asarray(rng_or_seed)
    if np.issubdtype(value.dtype, np.integer):
        return np.random.default_rng(int(value))
    return np.random.default_rng(int(value.astype(np.float32).view(np.uint32)))


def _natural_factors(factors) -> dict[str, float]:
    """Latent-unit factors -> clipped natural values, keyed without the `log_` prefix (`size`, ...)."""
    values = {}
    for factor in FACTORS:
        value = float(factors[factor.name])
        if factor.log_space:
            # Clip before exp: a wild log value must not overflow.
            value = math.exp(min(value, 50.0))
        values[factor.name.removeprefix("log_")] = min(max(value, factor.clip[0]), factor.clip[1])
    return values


def _displacement(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth random displacement field with unit RMS per axis, evaluated at `points` [P, 2].

    Each axis is a sum of `NUM_DISTORTION_MODES` sinusoids with random frequencies
    (~1 cycle per glyph height: bends whole strokes rather than jittering points),
    phases and Gaussian amplitudes; sqrt(2 / K) makes the expected mean square 1.
    """
    frequencies = rng.normal(0.0, DISTORTION_FREQUENCY, size=(2, NUM_DISTORTION_MODES, 2))
    phases = rng.uniform(0.0, 2.0 * np.pi, size=(2, NUM_DISTORTION_MODES))
    amplitudes = rng.normal(0.0, 1.0, size=(2, NUM_DISTORTION_MODES))
    waves = np.sin(2.0 * np.pi * np.einsum("amd,pd->apm", frequencies, points) + phases[:, None, :])
    return np.sqrt(2.0 / NUM_DISTORTION_MODES) * np.einsum("apm,am->pa", waves, amplitudes)


def _rasterise(points: np.ndarray, glyph: _CompiledGlyph, radius: float) -> np.ndarray:
    """Binary [32, 32] bitmap: pixels whose centre lies within `radius` of a skeleton segment.

    Vectorised over (pixels x segments), restricted to the window around the
    glyph's bounding box, where ink can be.
    """
    bitmap = np.zeros((BOX_SIZE, BOX_SIZE), dtype=bool)
    low = np.floor(points.min(axis=0) - radius).astype(int).clip(0, BOX_SIZE)
    high = np.ceil(points.max(axis=0) + radius).astype(int).clip(0, BOX_SIZE)
    if np.any(high <= low):
        return bitmap  # translated entirely out of the box
    start = points[glyph.segment_start].astype(np.float32)
    delta = points[glyph.segment_end].astype(np.float32) - start
    inverse_length2 = 1.0 / np.maximum(np.sum(delta * delta, axis=1), 1e-12)
    # Offsets from every segment start to every pixel centre in the window: [rows, cols, S].
    offset_x = (_PIXEL_CENTRES[low[0] : high[0]][None, :, None] - start[:, 0]).astype(np.float32)
    offset_y = (_PIXEL_CENTRES[low[1] : high[1]][:, None, None] - start[:, 1]).astype(np.float32)
    along = np.clip((offset_x * delta[:, 0] + offset_y * delta[:, 1]) * inverse_length2, 0.0, 1.0)
    distance2 = np.square(offset_x - along * delta[:, 0]) + np.square(offset_y - along * delta[:, 1])
    bitmap[low[1] : high[1], low[0] : high[0]] = distance2.min(axis=2) <= radius * radius
    return bitmap


def render_bitmap(digit: int, variant: int, factors, rng_or_seed) -> np.ndarray:
    """Renders one digit as the binary 32x32 bitmap (before the 4x4 block counts).

    Args:
      digit: class 0..9.
      variant: style variant index, `< VARIANT_COUNTS[digit]` (names in `GLYPHS`).
      factors: mapping with a value for every name in `FACTOR_NAMES`, in latent units
        (logs for the `log_*` factors).
      rng_or_seed: `np.random.Generator`, int seed, or the float `noise_seed` latent;
        drives the distortion field's shape and the flipped pixels.

    Returns:
      A `[32, 32]` bool array (row = y, downwards).

    Raises:
      ValueError: for an unknown digit or variant.
    """
    digit, variant = int(digit), int(variant)
    if digit not in _COMPILED or not 0 <= variant < len(_COMPILED[digit]):
        raise ValueError(f"No glyph for digit={digit}, variant={variant}; digits 0..9 have {VARIANT_COUNTS} variants.")
    glyph = _COMPILED[digit][variant]
    rng = _generator(rng_or_seed)
    values = _natural_factors(factors)
    # Stroke width, scaled by the glyph's skeleton length to the power `ink_exponent`: 0 keeps the
    # width (the hand-set default), 1 gives every glyph about the same ink whatever its length,
    # as in the UCI bitmaps (their set-pixel count is 310 +- 32 in every class of the validation
    # split, so a 1's stroke is about three times an 8's).
    length_factor = (REFERENCE_SKELETON_LENGTH / glyph.length) ** values["ink_exponent"]
    thickness = min(max(values["thickness"] * length_factor, 1.0), 12.0)

    # Distort first, in glyph units (height 1), so the field bends strokes the same way
    # whatever the later size; the field is always drawn to keep the noise stream fixed.
    field = _displacement(glyph.points, rng)
    points = glyph.points + (values["distortion"] / BOX_SIZE) * field
    x = points[:, 0] * values["aspect"]
    y = points[:, 1]
    x = x - values["shear"] * y  # y points down: the top (y < 0) moves right for shear > 0
    angle = math.radians(values["rotation"])
    cos, sin = math.cos(angle), math.sin(angle)
    points = np.stack([cos * x + sin * y, -sin * x + cos * y], axis=1)

    # UCI/NIST normalisation: the glyph's bounding box, stroke included, is scaled keeping
    # its aspect so its longest side spans `size` of the box, then centred; the shift
    # jitters after centring.
    low, high = points.min(axis=0), points.max(axis=0)
    extent = max(float(np.max(high - low)), 1e-6)
    scale = max(values["size"] * BOX_SIZE - thickness, 1.0) / extent
    centre = np.array([BOX_SIZE / 2 + values["shift_x"], BOX_SIZE / 2 + values["shift_y"]])
    points = (points - 0.5 * (low + high)) * scale + centre

    bitmap = _rasterise(points, glyph, 0.5 * thickness)
    # Salt and pepper after normalisation: specks must not move the bounding box.
    return bitmap ^ (rng.random((BOX_SIZE, BOX_SIZE)) < values["noise"])


def block_counts(bitmap: np.ndarray) -> np.ndarray:
    """Counts set pixels in non-overlapping 4x4 blocks: `[32, 32]` bool -> `[8, 8]` float32 in 0..16."""
    counts = bitmap.reshape(OBSERVATION_SIZE, BLOCK_SIZE, OBSERVATION_SIZE, BLOCK_SIZE).sum(axis=(1, 3))
    return counts.astype(np.float32)


def render_digit(digit: int, variant: int, factors, rng_or_seed) -> np.ndarray:
    """Renders one digit as a UCI-style 8x8 image with integer values 0..16 (float32).

    Same arguments as `render_bitmap`.
    """
    return block_counts(render_bitmap(digit, variant, factors, rng_or_seed))


def render_batch(latents) -> tuple[np.ndarray, np.ndarray]:
    """Renders a batch of latents (dict of `[n]` arrays or tensors) serially in numpy.

    For tests, evaluation and visualisation; training renders through
    `autosimulate_tf.data.render_latents`, which parallelises `render`.

    Returns:
      `(images [n, 8, 8] float32, labels [n] int32)`.
    """
    arrays = {name: np.asarray(value) for name, value in latents.items()}
    num_samples = len(arrays["digit"])
    images = np.empty((num_samples, OBSERVATION_SIZE, OBSERVATION_SIZE), np.float32)
    for index in range(num_samples):
        latent = {name: value[index] for name, value in arrays.items()}
        images[index] = render_digit(latent["digit"], latent["variant"], latent, latent["noise_seed"])
    return images, arrays["digit"].astype(np.int32)


@gin.configurable
class ProceduralDigitsSimulator(StyleDigitsSimulator):
    """Procedural digits 0-9 whose style distribution is psi; renders UCI-style 8x8 images.

    Latent (one `tfd.JointDistributionNamed`):

    - `digit ~ Categorical(class_logits)`;
    - `variant ~ Categorical(variant logits of that digit)`: the digit's style variants
      (`VARIANT_NAMES`, e.g. `1_flag_base`, `4_open`, `7_bar`); digits with fewer than
      `MAX_VARIANTS` variants have their padding slots fixed at `MASKED_LOGIT`;
    - for each factor in `FACTORS`, `factor ~ Normal(<factor>_mean, exp(<factor>_log_scale))`;
    - `noise_seed ~ Uniform(0, 1)`, psi-free: seeds the distortion field's shape and the
      flipped pixels.

    psi (all with search bounds): `class_logits` [10] (unless `tune_class_prior=False`),
    `variant_logits` [22] (flat, in `VARIANT_NAMES` order), and `<factor>_mean`,
    `<factor>_log_scale` for the ten factors.

    The untuned default is the hand-set choice a practitioner would make before any
    tuning; it is fixed here and never fitted to the real digits. Class prior and
    variants are uniform (all logits 0). A continuous factor hand-set as "uniform on
    [a, b]" becomes the Normal with the same mean and standard deviation,
    `(a + b) / 2` and `(b - a) / sqrt(12)`; positive, multiplicative factors are uniform
    on `[log a, log b]` and their latent is the log:

    ================  =======================================  ==============  ======  =====
    factor            natural unit                             hand-set range  mean    std
    ================  =======================================  ==============  ======  =====
    rotation          degrees, counter-clockwise               -15 .. 15       0       8.660
    shear             x offset per unit height                 -0.3 .. 0.3     0       0.173
    log_size          longest side / 32 px                     0.7 .. 1        -0.178  0.103
    log_aspect        width multiplier                         0.8 .. 1.2      -0.020  0.117
    shift_x, shift_y  px, after centring                       -2 .. 2         0       1.155
    log_thickness     stroke width, px at 32x32                1.5 .. 4        0.896   0.283
    log_distortion    RMS displacement, px (glyph 32 px tall)  0.5 .. 2        0       0.400
    log_noise         pixel flip probability                   0.001 .. 0.01   -5.756  0.665
    ink_exponent      width x (2.5 / skeleton length)^e        -0.1 .. 0.1     0       0.058
    ================  =======================================  ==============  ======  =====

    The ranges of rotation, shear, size, aspect, shift and stroke width are the ones the
    benchmark specifies; distortion and noise, which it leaves open, are set by hand in the
    same spirit (a mild bend, 1-10 flipped pixels per 32x32 bitmap), without reference to
    the real digits. `ink_exponent` exists because the real digits carry nearly the same
    ink in every class (a short glyph such as a 1 is drawn with a wider stroke than an 8);
    its default is "off" (about 0: the stroke width does not depend on the glyph), and
    tuning may turn it on.

    Rendering (numpy, `render_with_tf_ops = False`): see `render_bitmap`; natural values
    are clipped to `Factor.clip` so that no psi in or out of the search box breaks a render.
    """

    observation_shape = (OBSERVATION_SIZE, OBSERVATION_SIZE)
    observation_dtype = np.float32
    num_classes = NUM_CLASSES
    render_with_tf_ops = False

    variant_names = VARIANT_NAMES
    variant_counts = VARIANT_COUNTS
    max_variants = MAX_VARIANTS
    factors = FACTORS

    def __init__(self, logit_bound: float = 4.0, tune_class_prior: bool = True, name: str = "procedural_digits"):
        """Builds the simulator at the untuned default psi.

        Args:
          logit_bound: search box `[-logit_bound, logit_bound]` of the class and variant logits.
          tune_class_prior: whether `class_logits` is part of psi. False fixes the class
            prior at uniform (the real digits are class-balanced). Measured on the
            digits benchmark, fixing it did *worse* (median real test accuracy 0.850
            against 0.886 tuned; benchmarks/RESULTS.md), although the tuned prior
            moves far from uniform.
          name: module name.

        Raises:
          ConfigError: when `logit_bound` is not a finite number > 0.
        """
        super().__init__(logit_bound, tune_class_prior, name, default_factor_moments)

    def render(self, latent):
        """Renders one latent (dict of numpy scalars) to `(8x8 float32 image in 0..16, int32 label)`."""
        image = render_digit(latent["digit"], latent["variant"], latent, latent["noise_seed"])
        return image, np.int32(latent["digit"])
