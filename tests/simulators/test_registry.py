"""Conformance of every exported simulator, run over one registry (as Sonnet tests its modules).

`REGISTRY` maps every `Simulator` subclass in `autosimulate_tf.simulators.__all__` (but the
abstract bases `Simulator` and `WrappingSimulator`) to a factory building a small, cheap
instance; `test_every_exported_simulator_is_in_the_registry` fails, naming the class, when
a new simulator is exported without an entry. Over the registry:

- `sample_latents` returns a batch (every part has the requested leading dimension);
- `render` of each latent gives an observation of `observation_shape` castable to
  `observation_dtype` and a label of `label_shape` castable to `label_dtype`, in
  `range(num_classes)` when classifying (a simulator listed in `EXPECTED_RENDER_ERRORS`
  may raise those errors on purpose);
- `log_prob` is finite, of shape `[n]`, with a gradient in at least one psi variable;
- constrained parameters round-trip through `set_constrained_parameters`;
- `random_parameters` lies in `search_space()`;
- `temporary_psi` restores the unconstrained psi bit-exactly;
- pickling (what the process and Ray render backends ship): a pickled copy renders every
  latent exactly like the original (the same error type where it raises) and raises
  `PsiNotAvailableError` on every access to psi, while the original keeps working.
"""

import functools
import pickle

import numpy as np
import pytest
import tensorflow as tf

from autosimulate_tf import simulators
from autosimulate_tf.simulators import (
    CategoricalPoolsSimulator,
    FaultInjectingSimulator,
    GaussianMixtureSimulator,
    MnistDigitsSimulator,
    ProceduralDigitsSimulator,
    SceneSimulator,
    Simulator,
    SlowRenderSimulator,
    WrappingSimulator,
    xor_pools,
)
from autosimulate_tf.simulators.base import PsiNotAvailableError
from autosimulate_tf.simulators.faults import InjectedRenderError
from autosimulate_tf.simulators.mitsuba_guard import mitsuba_available

SEED = tf.constant([3, 1])
NUM_SAMPLES = 8


def scene_simulator():
    """A `SceneSimulator` at 4 spp; the tests of a registry entry skip when Mitsuba is not installed."""
    if not mitsuba_available():
        pytest.skip(
            "SceneSimulator renders with Mitsuba 3, which is not installed (pip install 'autosimulate_tf[render]')"
        )
    simulator = SceneSimulator()
    simulator.set_constrained_parameters({"spp_choice_logits": np.array([4.0, -4.0, -4.0, -4.0], np.float32)})
    return simulator


REGISTRY = {
    CategoricalPoolsSimulator: lambda: CategoricalPoolsSimulator(pools=xor_pools(pool_size=20)),
    FaultInjectingSimulator: lambda: FaultInjectingSimulator(
        simulator=GaussianMixtureSimulator(), nan_rate=0.3, raise_rate=0.2
    ),
    simulators.GaussianClassesSimulator: lambda: simulators.GaussianClassesSimulator(dimension=4),
    GaussianMixtureSimulator: GaussianMixtureSimulator,
    MnistDigitsSimulator: MnistDigitsSimulator,
    ProceduralDigitsSimulator: ProceduralDigitsSimulator,
    SceneSimulator: scene_simulator,
    simulators.SineRegressionSimulator: simulators.SineRegressionSimulator,
    SlowRenderSimulator: lambda: SlowRenderSimulator(simulator=GaussianMixtureSimulator(), work_ms=0.1),
}
# Errors a simulator's render raises on purpose; any other error fails the conformance tests.
EXPECTED_RENDER_ERRORS = {FaultInjectingSimulator: (InjectedRenderError,)}

parametrize_registry = pytest.mark.parametrize("simulator_class", list(REGISTRY), ids=lambda cls: cls.__name__)


def exported_simulator_classes() -> set[type]:
    """The concrete `Simulator` subclasses exported in `autosimulate_tf.simulators.__all__`."""
    exported = {getattr(simulators, name) for name in simulators.__all__}
    classes = {obj for obj in exported if isinstance(obj, type) and issubclass(obj, Simulator)}
    return classes - {Simulator, WrappingSimulator}


@functools.cache
def sampled(simulator_class):
    """`(simulator, latents)`, built once per class; tests that change psi build their own instance."""
    simulator = REGISTRY[simulator_class]()
    return simulator, simulator.sample_latents(NUM_SAMPLES, seed=SEED)


def one_latent(latents, index):
    """Latent `index` of a batch as numpy values, the way the render pipeline passes it."""
    return tf.nest.map_structure(lambda tensor: np.array(tensor.numpy()[index]), latents)


def render_or_error(simulator, latent):
    """`(observation, label)` as numpy arrays, or the type of an error listed in `EXPECTED_RENDER_ERRORS`."""
    try:
        observation, label = simulator.render(latent)
    except EXPECTED_RENDER_ERRORS.get(type(simulator), ()) as error:
        return type(error)
    return np.asarray(observation), np.asarray(label)


def test_every_exported_simulator_is_in_the_registry():
    missing = sorted(cls.__name__ for cls in exported_simulator_classes() - set(REGISTRY))
    assert not missing, (
        f"Exported simulators without a factory in REGISTRY (tests/simulators/test_registry.py): {missing}"
    )


@parametrize_registry
def test_sample_latents_returns_a_batch(simulator_class):
    _, latents = sampled(simulator_class)
    parts = tf.nest.flatten(latents)
    assert parts, "no latent parts"
    for part in parts:
        assert part.shape[0] == NUM_SAMPLES, part.shape


@parametrize_registry
def test_render_gives_the_declared_observation_and_label(simulator_class):
    simulator, latents = sampled(simulator_class)
    rendered = [render_or_error(simulator, one_latent(latents, index)) for index in range(NUM_SAMPLES)]
    successes = [result for result in rendered if not isinstance(result, type)]
    assert successes, "every render raised"
    for observation, label in successes:
        assert observation.shape == tuple(simulator.observation_shape)
        assert np.can_cast(observation.dtype, simulator.observation_dtype, casting="same_kind"), observation.dtype
        assert label.shape == tuple(simulator.label_shape)
        assert np.can_cast(label.dtype, simulator.label_dtype, casting="same_kind"), label.dtype
        if simulator.num_classes is not None:
            assert np.all((label >= 0) & (label < simulator.num_classes)), label
            assert np.array_equal(label, label.astype(np.int64)), label


@parametrize_registry
def test_log_prob_is_finite_and_differentiable_in_psi(simulator_class):
    simulator, latents = sampled(simulator_class)
    with tf.GradientTape() as tape:
        log_prob = simulator.log_prob(latents)
        total = tf.reduce_sum(log_prob)
    assert log_prob.shape == (NUM_SAMPLES,)
    assert np.all(np.isfinite(log_prob.numpy()))
    gradients = tape.gradient(total, simulator.psi_variables)
    assert any(gradient is not None for gradient in gradients), simulator.parameter_names


@parametrize_registry
def test_constrained_parameters_round_trip(simulator_class):
    simulator = REGISTRY[simulator_class]()
    assert set(simulator.constrained_parameters()) == set(simulator.parameter_names)
    values = simulator.random_parameters(np.random.default_rng(0))
    simulator.set_constrained_parameters(values)
    for name, value in simulator.constrained_parameters().items():
        np.testing.assert_allclose(value, values[name], rtol=1e-5, atol=1e-5, err_msg=name)


@parametrize_registry
def test_random_parameters_lie_in_the_search_space(simulator_class):
    simulator = REGISTRY[simulator_class]()
    space = simulator.search_space()
    assert set(space) == set(simulator.parameter_names)
    rng = np.random.default_rng(1)
    for _ in range(5):
        values = simulator.random_parameters(rng)
        assert set(values) == set(space)
        for name, (kind, shape, low, high) in space.items():
            value = np.asarray(values[name])
            assert value.shape == tuple(shape), name
            if kind == "simplex":
                assert np.all(value >= 0), name
                np.testing.assert_allclose(value.sum(axis=-1), 1.0, atol=1e-5, err_msg=name)
            else:
                assert kind == "box", (name, kind)
                assert np.all((value >= low) & (value <= high)), (name, value, low, high)


@parametrize_registry
def test_temporary_psi_restores_the_unconstrained_psi_bit_exactly(simulator_class):
    simulator = REGISTRY[simulator_class]()
    before = [variable.numpy().copy() for variable in simulator.psi_variables]
    values = simulator.random_parameters(np.random.default_rng(2))
    with simulator.temporary_psi(constrained=values):
        for name, value in simulator.constrained_parameters().items():
            np.testing.assert_allclose(value, values[name], rtol=1e-5, atol=1e-5, err_msg=name)
    for name, variable, value in zip(simulator.parameter_names, simulator.psi_variables, before, strict=True):
        assert np.array_equal(variable.numpy(), value), name


@parametrize_registry
def test_a_pickled_copy_renders_like_the_original(simulator_class):
    simulator, latents = sampled(simulator_class)  # its compiled sampler is attached: it must not break pickling
    copy = pickle.loads(pickle.dumps(simulator))
    assert type(copy) is type(simulator)
    assert tuple(copy.observation_shape) == tuple(simulator.observation_shape)
    for index in range(NUM_SAMPLES):
        latent = one_latent(latents, index)
        original, copied = render_or_error(simulator, latent), render_or_error(copy, latent)
        if isinstance(original, type):
            assert copied is original
        else:
            np.testing.assert_array_equal(copied[0], original[0])
            np.testing.assert_array_equal(copied[1], original[1])
    # A copy of a copy is still a working renderer.
    again = pickle.loads(pickle.dumps(copy))
    for index in range(NUM_SAMPLES):
        latent = one_latent(latents, index)
        copied, recopied = render_or_error(copy, latent), render_or_error(again, latent)
        if isinstance(copied, type):
            assert recopied is copied
        else:
            np.testing.assert_array_equal(recopied[0], copied[0])


@parametrize_registry
def test_psi_is_not_available_in_a_pickled_copy_and_the_original_is_untouched(simulator_class):
    simulator, _ = sampled(simulator_class)
    copy = pickle.loads(pickle.dumps(simulator))
    accesses = {
        "parameter": lambda: copy.parameter(simulator.parameter_names[0]),
        "psi_variables": lambda: copy.psi_variables,
        "parameter_names": lambda: copy.parameter_names,
        "constrained_parameters": copy.constrained_parameters,
        "latent_distribution": copy.latent_distribution,
        "log_prob": lambda: copy.log_prob(simulator.sample_latents(2, seed=SEED)),
        "sample_latents": lambda: copy.sample_latents(4, seed=SEED),
        "set_unconstrained_vector": lambda: copy.set_unconstrained_vector(simulator.unconstrained_vector()),
        "temporary_psi": lambda: copy.temporary_psi().__enter__(),
    }
    for access, call in accesses.items():
        try:
            call()
        except PsiNotAvailableError as error:
            assert "render must depend only on its latent" in str(error), access
        else:
            pytest.fail(f"{access} worked on a pickled copy")
    assert copy.variables == ()  # no tf.Variable travelled
    assert simulator.psi_variables and simulator.sample_latents(3, seed=SEED) is not None
