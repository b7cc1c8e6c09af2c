"""The simulator interface: a latent distribution p(c | psi) plus a black-box renderer.

A simulator owns its parameters psi as unconstrained `tf.Variable`s (constrained
values come out of TFP bijectors, so psi can never leave its domain), builds the
latent distribution from them, and renders one latent to one labelled example.
The renderer is never differentiated: the hypergradient only needs the latents
and `log_prob` (score-function estimator).

To plug in your own simulator, write one subclass:

    @gin.configurable
    class MySimulator(Simulator):
        observation_shape = (8, 8)
        num_classes = 10

        def __init__(self, name="my_simulator"):
            super().__init__(name=name)
            self.add_parameter("thickness_mean", 2.0, bijector=tfb.Softplus())

        def latent_distribution(self):
            return tfd.JointDistributionNamed(dict(
                digit=tfd.Categorical(logits=tf.zeros(10)),
                thickness=tfd.Normal(self.parameter("thickness_mean"), 0.5)))

        def render(self, latent):  # numpy in, numpy out, one example
            return draw(latent["digit"], latent["thickness"]), latent["digit"]
"""

import contextlib

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from autosimulate_tf.errors import check
from autosimulate_tf.simulators.domains import constrained_value_problem, show

tfb = tfp.bijectors


class PsiNotAvailableError(RuntimeError):
    """psi was read from a pickled copy of a simulator (in a render worker), where it does not exist."""


class _PsiLeftOnTheDriver:
    """Stands in for psi state (variables, bijectors, compiled functions) in a pickled simulator.

    Any use raises `PsiNotAvailableError` naming the simulator and attribute, so a
    `render` that reads psi fails loudly in a worker instead of using stale values.
    """

    def __init__(self, owner: str, attribute: str):
        self.owner = owner
        self.attribute = attribute

    def _fail(self, *args, **kwargs):
        raise PsiNotAvailableError(
            f"{self.owner}.{self.attribute} is not available in a pickled or copied simulator (a render worker's "
            "copy, or copy.copy / copy.deepcopy): render must depend only on its latent, since psi acts through "
            "sample_latents on the driver. To duplicate a simulator with its psi, construct a new one and call "
            "new.set_constrained_parameters(old.constrained_parameters())."
        )

    __getitem__ = __iter__ = __len__ = __contains__ = __call__ = _fail
    keys = values = items = get = forward = inverse = numpy = assign = _fail


class Simulator(tf.Module):
    """Base class of all simulators.

    Subclasses set `observation_shape` (shape of one rendered input), optionally
    `observation_dtype`, `label_shape`, `label_dtype`, `num_classes` (None for
    regression) and `render_with_tf_ops` (True when `render` is written in TF ops
    and may run inside the `tf.data` graph; False runs it as Python/numpy through
    `tf.numpy_function`), and implement `latent_distribution` and `render`.

    `render` must depend only on its latent, never on psi: psi acts through
    `sample_latents` on the driver, and a process or Ray render backend
    (`autosimulate_tf.data.backends`) renders with a pickled copy of the simulator.
    Pickling (`__getstate__`) therefore ships what `render` needs (plain attributes,
    constant tensors, wrapped simulators) and drops the TF state: the psi variables
    and bijectors, compiled functions and `tf.Module` tracking bookkeeping. In such a
    copy every access to psi (`parameter`, `psi_variables`, `latent_distribution`,
    `sample_latents`, ...) raises `PsiNotAvailableError` instead of silently using
    stale values. The same holds for `copy.copy` / `copy.deepcopy` of a simulator: to duplicate
    one with its psi, construct a new one and call `set_constrained_parameters`.

    To evaluate anything under another psi and come back to the exact current one (eagerly
    or inside a `tf.function`), use the `temporary_psi` context manager.
    """

    observation_shape: tuple = ()
    observation_dtype = np.float32
    label_shape: tuple = ()
    label_dtype = np.int32
    num_classes: int | None = None
    render_with_tf_ops: bool = False
    # Optional `render_cost(latents) -> [n]` tensor (e.g. samples per pixel), used by
    # `HypergradientEstimator.render_cost_weight`; None: the simulator reports no cost.
    render_cost = None
    # Latents location-scale in psi, for `HypergradientEstimator.gradient_estimator="pathwise"` (hypergrad/pathwise.py).
    reparameterized_latents: tuple = ()

    def __init__(self, name: str | None = None):
        """Starts a simulator with no psi; subclasses then call `add_parameter` per component.

        Args:
          name: module name (in variable names, logs and checkpoints).
        """
        super().__init__(name=name)
        self._variables = {}
        self._bijectors = {}
        self._bounds = {}

    def __getstate__(self):
        """What a pickled copy keeps: everything `render` may need, without psi or other TF state.

        Psi variables, bijectors, any other `tf.Variable` or compiled `tf.function`
        attribute are replaced by stand-ins that raise `PsiNotAvailableError` on use;
        `tf.Module`'s tracking bookkeeping (`_self_*`) is dropped and rebuilt lazily.
        """
        owner = type(self).__name__
        state = {}
        for key, value in self.__dict__.items():
            if key.startswith("_self_"):
                continue  # Trackable bookkeeping: references the variables, rebuilt on demand.
            if key == "_compiled_sample":
                value = None  # Rebuilt on demand from latent_distribution, which then fails on psi.
            elif key in ("_variables", "_bijectors") or isinstance(
                value, tf.Variable | tf.types.experimental.PolymorphicFunction
            ):
                value = _PsiLeftOnTheDriver(owner, key.lstrip("_"))
            state[key] = value
        return state

    def __setstate__(self, state):
        """Restores a pickled copy without going through `tf.Module` attribute tracking."""
        self.__dict__.update(state)

    def add_parameter(self, name: str, initial_value, bijector=None, bounds=None) -> tf.Variable:
        """Creates one psi component.

        Args:
          name: name used in logs, checkpoints and `results.json`.
          initial_value: the *constrained* initial value; it must be finite and inside
            the bijector's domain (see `simulators.domains`: e.g. > 0 for Softplus, a
            probability vector with entries > 0 summing to 1 for SoftmaxCentered).
          bijector: maps the unconstrained variable to the constrained value
            (identity when None).
          bounds: optional `(low, high)` box in constrained space, used by search
            baselines to know where to look.

        Returns:
          The unconstrained `tf.Variable`.

        Raises:
          ConfigError: naming the simulator class and `name`, when `initial_value` is not
            finite or outside the bijector's domain (checked before any variable exists).
          ValueError: when `name` is already a psi component.
        """
        if name in self._variables:
            raise ValueError(f"Simulator parameter {name!r} is defined twice.")
        bijector = bijector or tfb.Identity()
        problem = constrained_value_problem(initial_value, bijector)
        check(
            problem is None,
            f"{type(self).__name__} psi parameter {name!r}: initial value {show(initial_value)} is not allowed: "
            f"{problem}.",
        )
        initial = tf.convert_to_tensor(np.asarray(initial_value, np.float32))
        variable = tf.Variable(bijector.inverse(initial), name=name, dtype=tf.float32)
        self._variables[name] = variable
        self._bijectors[name] = bijector
        if bounds is not None:
            self._bounds[name] = bounds
        return variable

    def parameter(self, name: str) -> tf.Tensor:
        """The constrained value of psi component `name` (differentiable in psi)."""
        return self._bijectors[name].forward(self._variables[name])

    @property
    def parameter_names(self) -> list[str]:
        """Names of the psi components, in creation order."""
        return list(self._variables)

    @property
    def psi_variables(self) -> list[tf.Variable]:
        """The unconstrained psi variables, in creation order (what the outer optimizer updates)."""
        return list(self._variables.values())

    def parameter_bounds(self, name: str):
        """The `(low, high)` constrained search box of component `name`, or None."""
        return self._bounds.get(name)

    def constrained_parameters(self) -> dict[str, np.ndarray]:
        """All psi components as constrained numpy values, by name."""
        return {name: self.parameter(name).numpy() for name in self._variables}

    def constrained_parameters_as_lists(self) -> dict[str, list]:
        """`constrained_parameters` as JSON-ready nested lists (for results and curves)."""
        return {name: np.asarray(value).tolist() for name, value in self.constrained_parameters().items()}

    def _unconstrained_value(self, name: str, value) -> tf.Tensor:
        """`bijector.inverse(value)` for component `name`; a KeyError naming the known ones if unknown."""
        if name not in self._variables:
            raise KeyError(f"Unknown simulator parameter {name!r}; known: {self.parameter_names}.")
        return self._bijectors[name].inverse(tf.cast(value, tf.float32))

    def set_constrained_parameters(self, values: dict) -> None:
        """Assigns psi from constrained values (used by search baselines)."""
        for name, value in values.items():
            self._variables[name].assign(self._unconstrained_value(name, value))

    @contextlib.contextmanager
    def temporary_psi(self, constrained: dict | None = None, unconstrained=None):
        """Sets psi for the duration of a `with` block, then restores the previous psi bit-exactly.

        On entry the exact unconstrained values of every psi variable are saved
        (`tf.identity` of each), then the new values are assigned; on exit, normal or by
        an exception, the saved values are assigned back. Restoring the unconstrained
        values (not a constrained round trip, which is not exact through e.g.
        `SoftmaxCentered`) leaves a caller's psi trajectory unchanged. Inside a
        `tf.function` it emits the reads and assigns as ops, which run in program order
        (automatic control dependencies on the variables); no value leaves the graph.
        A `WrappingSimulator` shares the wrapped simulator's variables, so either works.

            with simulator.temporary_psi(constrained={"means": stored_means}):
                log_prob = simulator.log_prob(latents)

        Args:
          constrained: `{name: constrained value}` for some or all psi components; the
            others keep their current values.
          unconstrained: one value per psi variable, in `psi_variables` order (tensors or
            arrays of each variable's shape).

        Yields:
          This simulator.

        Raises:
          KeyError: for a name in `constrained` that is not a psi component (naming the
            known ones), before anything is assigned.
          ValueError: when both arguments are given, or `unconstrained` has the wrong length.
        """
        if constrained is not None and unconstrained is not None:
            raise ValueError("temporary_psi takes constrained= or unconstrained=, not both.")
        variables = self.psi_variables
        if constrained is not None:
            new_values = {name: self._unconstrained_value(name, value) for name, value in constrained.items()}
        elif unconstrained is not None:
            unconstrained = list(unconstrained)
            if len(unconstrained) != len(variables):
                raise ValueError(
                    f"temporary_psi(unconstrained=...) needs {len(variables)} values (one per psi variable, in "
                    f"psi_variables order: {self.parameter_names}); got {len(unconstrained)}."
                )
            new_values = dict(zip(self.parameter_names, unconstrained, strict=True))
        else:
            new_values = {}
        saved = [tf.identity(variable) for variable in variables]
        try:
            for name, value in new_values.items():
                self._variables[name].assign(tf.cast(value, self._variables[name].dtype))
            yield self
        finally:
            for variable, value in zip(variables, saved, strict=True):
                variable.assign(value)

    def search_space(self) -> dict[str, tuple]:
        """The search box of random search and Bayesian optimisation, by component.

        Returns:
          `{name: (kind, shape, low, high)}`: kind "simplex" for components on the simplex
          (SoftmaxCentered bijector; low/high are None), else "box" with the component's
          constrained `bounds`.

        Raises:
          ConfigError: when a non-simplex component has no bounds (naming it).
        """
        space = {}
        for name in self._variables:
            shape = tuple(self.parameter(name).shape)
            if isinstance(self._bijectors[name], tfb.SoftmaxCentered):
                space[name] = ("simplex", shape, None, None)
                continue
            check(
                name in self._bounds,
                f"{type(self).__name__} psi parameter {name!r} has no bounds; pass bounds=(low, high) to "
                "add_parameter to make it searchable.",
            )
            low, high = self._bounds[name]
            space[name] = ("box", shape, float(low), float(high))
        return space

    def random_parameters(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """A uniformly random psi inside `search_space()` (for random search).

        Components on the simplex are drawn from a flat Dirichlet; others uniformly inside
        their `bounds`. Override for a custom search space (Bayesian optimisation then
        refuses the simulator, as it cannot read that space).

        Raises:
          ConfigError: when a component has no bounds (naming it).
        """
        values = {}
        for name, (kind, shape, low, high) in self.search_space().items():
            if kind == "simplex":
                values[name] = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1]).astype(np.float32)
            else:
                values[name] = rng.uniform(low, high, size=shape).astype(np.float32)
        return values

    def unconstrained_vector(self) -> np.ndarray:
        """All psi variables flattened into one unconstrained vector (for policies over psi)."""
        return np.concatenate([v.numpy().reshape(-1) for v in self._variables.values()])

    def set_unconstrained_vector(self, vector) -> None:
        """Inverse of `unconstrained_vector`: assigns every psi variable from one flat vector."""
        vector = np.asarray(vector, np.float32)
        offset = 0
        for variable in self._variables.values():
            size = int(np.prod(variable.shape))
            variable.assign(vector[offset : offset + size].reshape(variable.shape))
            offset += size
        if offset != vector.size:
            raise ValueError(f"Expected a psi vector of size {offset}, got {vector.size}.")

    def latent_distribution(self):
        """The TFP distribution p(c | psi), built from the current psi (override)."""
        raise NotImplementedError

    def render(self, latent):
        """Renders one latent to `(observation, label)` (override; never differentiated)."""
        raise NotImplementedError

    def sample_latents(self, num_samples: int, seed) -> object:
        """Draws `num_samples` latents with a stateless `seed` (a shape-[2] int tensor).

        The samples are `stop_gradient`-ed: a reparameterised sample left on a tape
        would make the score-function term silently zero (DESIGN.md section 2).
        Sampling runs as a compiled `tf.function` (eager TFP joint sampling costs tens
        of milliseconds per call); it reads the current psi on every call.
        """
        if isinstance(self._variables, _PsiLeftOnTheDriver):
            self._variables._fail()  # A worker copy: fail here, not inside a tf.function trace.
        if getattr(self, "_compiled_sample", None) is None:
            # Bypass tf.Module attribute tracking: the compiled function holds no state of its own.
            object.__setattr__(self, "_compiled_sample", tf.function(self._sample_latents, reduce_retracing=True))
        return self._compiled_sample(tf.constant(num_samples), tf.convert_to_tensor(seed))

    def _sample_latents(self, num_samples, seed):
        samples = self.latent_distribution().sample(num_samples, seed=seed)
        return tf.nest.map_structure(tf.stop_gradient, samples)

    def log_prob(self, latents) -> tf.Tensor:
        """`log p(c_i | psi)` for a batch of latents, differentiable in psi only.

        `stop_gradient` on the latents is applied here, so the score term is right
        even if a caller sampled them on the same tape.
        """
        latents = tf.nest.map_structure(tf.stop_gradient, latents)
        return self.latent_distribution().log_prob(latents)


class WrappingSimulator(Simulator):
    """Base of simulators that wrap another one and only change how it renders.

    The wrapper *is* the wrapped simulator as far as the optimiser is concerned: it
    shares its psi variables, bijectors and bounds, its latent distribution, its
    search space and its output spec. Subclasses override `render`, which runs as
    Python (`render_with_tf_ops = False`) so it may raise, sleep or loop.
    """

    render_with_tf_ops = False

    def __init__(self, simulator, name: str):
        """Wraps `simulator`, sharing its psi state and output spec.

        Args:
          simulator: the simulator to wrap.
          name: module name.
        """
        super().__init__(name=name)
        self.wrapped = simulator
        self._variables = simulator._variables
        self._bijectors = simulator._bijectors
        self._bounds = simulator._bounds
        self.observation_shape = tuple(simulator.observation_shape)
        self.observation_dtype = simulator.observation_dtype
        self.label_shape = tuple(simulator.label_shape)
        self.label_dtype = simulator.label_dtype
        self.num_classes = simulator.num_classes

    def latent_distribution(self):
        """The wrapped simulator's p(c | psi)."""
        return self.wrapped.latent_distribution()

    def random_parameters(self, rng):
        """The wrapped simulator's search space."""
        return self.wrapped.random_parameters(rng)
