"""Pathwise (reparameterisation) gradients of the influence, for latents that are location-scale in psi.

A latent part `u` whose distribution given its parents is location-scale in psi,
`u = m(psi) + s(psi) * eps` with `eps` free of psi, lets the hypergradient differentiate
through the render instead of scoring `u`. Split the latents into `d` (scored) and `u`
(reparameterised); with `z` held fixed,

    dF/dpsi ~= -d/dpsi E_c[w(c)],   w(c) = grad_theta l(render(c); theta) . z
             =  -E[ grad_psi w(d, u(psi, eps)) ]                       pathwise part
                -E[ (w - b) grad_psi log p(d | u(psi, eps), psi) ]     score part, d only

(the score part is zero when every psi-dependent part is reparameterised, as for the
Gaussian mixture's `point`). The stored samples are reused without storing `eps`:

    u(psi) = u + (t(psi) - stop_gradient(t(psi))),   t(psi) = m(psi) + s(psi) * stop_gradient((u - m) / s),

whose value is exactly `u` and whose gradient is the pathwise one `dt/dpsi` (`m`, `s` the
part's `mean()` and `stddev()` given the other latents). Parts are reparameterised in the
order the simulator lists them, so a part whose parents are reparameterised gets a path
through them as well when the parents are listed first.

The pathwise estimate trades the variance of `w` for the variance of its derivative in the
latents: usually the smaller one for a smooth `w` (and it needs no baseline), not always;
a model with steep outputs in the latents can make it the larger [1].

The pathwise part renders the latents again, on the tape (so `render` must be TF ops,
differentiable in the reparameterised parts, and a deterministic function of its latent);
the result is checked against the stored `generated.inputs` and labels.

#### References
[1]: Mohamed, Rosca, Figurnov, Mnih. Monte Carlo Gradient Estimation in Machine Learning.
     JMLR 21(132), 2020. arXiv:1906.10652.
"""

import tensorflow as tf
import tensorflow_probability as tfp

from autosimulate_tf.errors import check

tfd = tfp.distributions

SCORE_FUNCTION = "score_function"
PATHWISE = "pathwise"
GRADIENT_ESTIMATORS = (SCORE_FUNCTION, PATHWISE)

# Families for which `(u - mean) / stddev` has a distribution free of the family's
# parameters, so `mean + stddev * eps` is a valid reparameterisation elementwise.
LOCATION_SCALE_FAMILIES = (
    tfd.Normal,
    tfd.MultivariateNormalDiag,
    tfd.Laplace,
    tfd.Logistic,
    tfd.Gumbel,
    tfd.Uniform,
)
# Wrappers that only reinterpret or repeat their inner distribution's draws.
_ELEMENTWISE_WRAPPERS = (tfd.Independent, tfd.Sample)

_SETTING = f"HypergradientEstimator.gradient_estimator={PATHWISE!r}"


def _base_family(distribution):
    """The distribution inside any `Independent` / `Sample` wrappers."""
    while isinstance(distribution, _ELEMENTWISE_WRAPPERS):
        distribution = distribution.distribution
    return distribution


def check_simulator(simulator) -> None:
    """Raises `ConfigError` unless `simulator` supports pathwise gradients.

    It must render with TF ops, list at least one name in `reparameterized_latents`, and
    each listed name must be a part of its joint latent distribution from one of
    `LOCATION_SCALE_FAMILIES` (possibly inside `Independent` / `Sample`).
    """
    name = type(simulator).__name__
    check(
        bool(getattr(simulator, "render_with_tf_ops", False)),
        f"{_SETTING} differentiates through render, which needs a TF-op render; {name} has "
        "render_with_tf_ops = False. Use 'score_function' for this simulator.",
    )
    declared = tuple(getattr(simulator, "reparameterized_latents", ()))
    check(
        bool(declared),
        f"{_SETTING} needs a simulator that lists its location-scale latents in reparameterized_latents; "
        f"{name} lists none. Use 'score_function' for this simulator.",
    )
    joint = simulator.latent_distribution()
    check(
        hasattr(joint, "sample_distributions"),
        f"{_SETTING}: {name}.latent_distribution() is a {type(joint).__name__}; reparameterized_latents names "
        "parts of a joint distribution (e.g. tfd.JointDistributionNamed).",
    )
    distributions, _ = joint.sample_distributions(seed=tf.constant([0, 0]))
    for latent in declared:
        check(
            latent in distributions,
            f"{_SETTING}: {name}.reparameterized_latents names {latent!r}, which is not a latent; latents are "
            f"{sorted(distributions)}.",
        )
        family = _base_family(distributions[latent])
        check(
            isinstance(family, LOCATION_SCALE_FAMILIES),
            f"{_SETTING}: {name} latent {latent!r} is a {type(family).__name__}, not a location-scale family "
            f"({', '.join(f.__name__ for f in LOCATION_SCALE_FAMILIES)}).",
        )


def reparameterized_latents(simulator, latents) -> tuple[dict, tuple]:
    """The latents with a pathwise gradient to psi through `simulator.reparameterized_latents`.

    Args:
      simulator: a simulator that passed `check_simulator`.
      latents: a batch of stored latents (a dict of `[n, ...]` tensors).

    Returns:
      `(latents, names)`: a dict equal in value to `latents` in which the listed parts
      carry the gradient `d u(psi) / d psi` (the others are `stop_gradient`-ed), and the
      names of the reparameterised parts.
    """
    # stop_gradient drops any path the caller's latents carry; the only paths left are the ones built here.
    latents = dict(tf.nest.map_structure(tf.stop_gradient, dict(latents)))
    names = tuple(simulator.reparameterized_latents)
    for name in names:
        distributions, _ = simulator.latent_distribution().sample_distributions(value=latents)
        distribution = distributions[name]
        value = latents[name]
        mean = tf.cast(distribution.mean(), value.dtype)
        stddev = tf.cast(distribution.stddev(), value.dtype)
        # stop_gradient drops d eps / d psi: eps is the fixed noise behind the stored sample.
        noise = tf.stop_gradient((value - mean) / stddev)
        path = mean + stddev * noise
        # Exactly the stored value (so the render reproduces the stored inputs bit for bit), with path's gradient.
        latents[name] = value + (path - tf.stop_gradient(path))
    return latents, names


def render_batch(simulator, latents, input_dtype, label_dtype) -> tuple[tf.Tensor, tf.Tensor]:
    """`(inputs, labels)` of a batch of latents, rendered with the simulator's TF-op `render` on the tape."""
    observation_shape = tuple(simulator.observation_shape)

    def render_one(latent):
        observation, label = simulator.render(latent)
        observation = tf.ensure_shape(tf.cast(observation, input_dtype), observation_shape)
        return observation, tf.cast(label, label_dtype)

    return tf.vectorized_map(render_one, latents, fallback_to_while_loop=True)


def _check_reproduces(rendered, stored, what: str):
    """An assertion op: `rendered` equals `stored` up to float rounding (fails at run time, naming `what`)."""
    dtype = stored.dtype if stored.dtype.is_floating else tf.float32
    rendered, stored = tf.cast(rendered, dtype), tf.cast(stored, dtype)
    difference = tf.reduce_max(tf.abs(rendered - stored))  # -inf for no examples: nothing to check
    tolerance = 1e-5 * (1.0 + tf.reduce_max(tf.abs(stored)))
    return tf.debugging.assert_less_equal(
        difference,
        tolerance,
        message=f"{_SETTING}: rendering the stored latents again did not reproduce generated.{what}; render must be "
        "a deterministic function of its latent (no random ops, no reads of psi or other state).",
    )


def pathwise_influence(objective, theta, z, simulator, latents, generated) -> tf.Tensor:
    """`[n]` influence weights `w_i(psi) = grad_theta l(render(c_i(psi)); theta) . z`, differentiable in psi.

    Renders `latents` (from `reparameterized_latents`) again and takes one forward-mode JVP
    along `z`, as `influence.influence_weights` does, on whatever tape is recording. Runs on
    the current device over all examples (it is not split over `objective.sharding`).

    Args:
      objective: the `TaskObjective`.
      theta: the model weights (list of tensors).
      z: `(C + lambda I)^-1 v`, shaped like `theta` (held fixed: no gradient flows into it).
      simulator: the simulator whose `render` produced `generated`.
      latents: the latents with their pathwise gradients.
      generated: the `GeneratedData` the latents were rendered into.

    Returns:
      `[n]` influence weights, equal in value to the ones of `generated`.

    Raises:
      tf.errors.InvalidArgumentError: when the render does not reproduce `generated`.
    """
    theta = list(theta)
    # stop_gradient drops dz/dpsi: the estimator differentiates E_c[z . grad l(c)] with z held fixed.
    z = [tf.stop_gradient(tf.convert_to_tensor(v)) for v in z]
    inputs, labels = render_batch(simulator, latents, generated.inputs.dtype, generated.labels.dtype)
    checks = [
        _check_reproduces(inputs, generated.inputs, "inputs"),
        _check_reproduces(labels, generated.labels, "labels"),
    ]
    with tf.control_dependencies(checks):
        inputs, labels = tf.identity(inputs), tf.identity(labels)
    with tf.autodiff.ForwardAccumulator(theta, z) as tangent:
        per_example = objective.per_example_losses(theta, inputs, labels)
    return tangent.jvp(per_example)
