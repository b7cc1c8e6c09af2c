"""Approximate solvers for `(H + lambda I) z = v`, all with one interface.

A solver is a function `solver(matvec, rhs, initial_guess=None) -> SolverResult`
where `matvec(u)` returns the damped curvature product `(H + lambda I) u` and
vectors are lists of tensors shaped like the model weights. The knobs of each
solver are gin-configurable keyword arguments, e.g.
`HypergradientEstimator.solver = @conjugate_gradient` and
`conjugate_gradient.num_iterations = 10`.

All of them work eagerly and inside `tf.function`.

#### References
[1]: Behl, Baydin, Gal, Torr, Vineet. AutoSimulate: (Quickly) Learning Synthetic
     Data Generation. ECCV 2020. arXiv:2008.08424.
[2]: Lorraine, Vicol, Duvenaud. Optimizing Millions of Hyperparameters by Implicit
     Differentiation. AISTATS 2020 (the truncated Neumann series).
"""

from typing import NamedTuple

import gin
import tensorflow as tf

from autosimulate_tf.errors import ConfigError
from autosimulate_tf.hypergrad import tree_math


class SolverResult(NamedTuple):
    """What a solver returns.

    Attributes:
      solution: `z`, a list of tensors shaped like the right-hand side.
      hvp_count: number of curvature-vector products (Hessian or Gauss-Newton) the solver used (int32).
      negative_curvature: True when the solver met a direction with `u.Au <= 0`
        (conjugate gradients stop there; `exact` reports a non-positive eigenvalue).
      iterations: iterations actually run (int32).
    """

    solution: list
    hvp_count: tf.Tensor
    negative_curvature: tf.Tensor
    iterations: tf.Tensor


@gin.configurable
def identity(matvec, rhs, initial_guess=None) -> SolverResult:
    """`z = v`: replaces the inverse curvature by the identity.

    This is the first-order (T1-T2) ablation: no curvature products at all.
    """
    del matvec, initial_guess  # The identity needs neither.
    return SolverResult(
        solution=list(rhs),
        hvp_count=tf.constant(0),
        negative_curvature=tf.constant(False),
        iterations=tf.constant(0),
    )


@gin.configurable
def neumann(matvec, rhs, initial_guess=None, num_terms: int = 10, step_size: float = 0.1) -> SolverResult:
    """Truncated Neumann series `z = a * sum_{k<K} (I - a A)^k v`.

    Converges to `A^{-1} v` when `0 < a < 2 / lambda_max(A)`; truncation biases `z`
    towards `a K v` for tiny curvature, which acts as extra damping.

    Args:
      matvec: `u -> A u`.
      rhs: `v`.
      initial_guess: ignored (the series has no warm start).
      num_terms: K >= 1, the number of series terms (K - 1 products).
      step_size: a > 0.

    Returns:
      A `SolverResult`.
    """
    del initial_guess
    if num_terms < 1:
        raise ConfigError(f"neumann.num_terms={num_terms} must be >= 1.")
    if step_size <= 0:
        raise ConfigError(f"neumann.step_size={step_size} must be > 0.")
    term = list(rhs)
    total = list(rhs)
    for _ in range(num_terms - 1):
        term = tree_math.axpy(-step_size, matvec(term), term)
        total = tree_math.add(total, term)
    return SolverResult(
        solution=tree_math.scale(step_size, total),
        hvp_count=tf.constant(num_terms - 1),
        negative_curvature=tf.constant(False),
        iterations=tf.constant(num_terms - 1),
    )


@gin.configurable
def conjugate_gradient(
    matvec, rhs, initial_guess=None, num_iterations: int = 10, tolerance: float = 1e-6
) -> SolverResult:
    """Conjugate gradients, warm-started, stopping on non-positive curvature.

    Args:
      matvec: `u -> A u` (A should be symmetric; PSD for guaranteed progress).
      rhs: `v`.
      initial_guess: starting point, typically the previous outer iteration's `z`;
        zeros when None.
      num_iterations: maximum CG iterations (>= 1).
      tolerance: stop when `|r| <= tolerance * |v|`.

    Returns:
      A `SolverResult`. When a search direction has `p.Ap <= 0` the solver stops,
      keeps the last iterate and sets `negative_curvature`.
    """
    if num_iterations < 1:
        raise ConfigError(f"conjugate_gradient.num_iterations={num_iterations} must be >= 1.")
    rhs = list(rhs)
    if initial_guess is None:
        solution = tree_math.zeros_like(rhs)
        residual = list(rhs)
        warm_start_matvecs = 0
    else:
        solution = list(initial_guess)
        residual = tree_math.subtract(rhs, matvec(solution))
        warm_start_matvecs = 1
    search_direction = list(residual)
    residual_sq = tree_math.dot(residual, residual)
    threshold_sq = tf.square(tf.cast(tolerance, residual_sq.dtype)) * tree_math.dot(rhs, rhs)

    def keep_going(iteration, solution, residual, search_direction, residual_sq, negative):
        del solution, residual, search_direction
        return tf.logical_and(
            tf.logical_and(iteration < num_iterations, tf.logical_not(negative)),
            residual_sq > threshold_sq,
        )

    def step(iteration, solution, residual, search_direction, residual_sq, negative):
        del negative
        curved = matvec(search_direction)
        curvature = tree_math.dot(search_direction, curved)
        negative = curvature <= 0
        # On negative curvature the step is discarded (alpha = 0): the iterate stays put.
        alpha = tf.where(
            negative, tf.zeros_like(curvature), residual_sq / tf.where(negative, tf.ones_like(curvature), curvature)
        )
        new_solution = tree_math.axpy(alpha, search_direction, solution)
        new_residual = tree_math.axpy(-alpha, curved, residual)
        new_residual_sq = tree_math.dot(new_residual, new_residual)
        beta = new_residual_sq / residual_sq
        new_search_direction = tree_math.axpy(beta, search_direction, new_residual)
        return iteration + 1, new_solution, new_residual, new_search_direction, new_residual_sq, negative

    iterations, solution, _, _, _, negative = tf.while_loop(
        keep_going,
        step,
        (tf.constant(0), solution, residual, search_direction, residual_sq, tf.constant(False)),
    )
    return SolverResult(
        solution=list(solution),
        hvp_count=iterations + warm_start_matvecs,
        negative_curvature=negative,
        iterations=iterations,
    )


@gin.configurable
def exact(matvec, rhs, initial_guess=None) -> SolverResult:
    """Materialises `A` column by column (n products) and solves exactly.

    Only for tiny models: the test oracle. `A` is symmetrised before solving to
    remove round-off asymmetry.

    Args:
      matvec: `u -> A u`.
      rhs: `v`.
      initial_guess: ignored.

    Returns:
      A `SolverResult` whose `negative_curvature` says whether A has an
      eigenvalue <= 0.
    """
    del initial_guess
    rhs = list(rhs)
    flat_rhs = tree_math.flatten(rhs)
    size = flat_rhs.shape.num_elements()
    basis = tf.eye(size, dtype=flat_rhs.dtype)

    def column(unit):
        return tree_math.flatten(matvec(tree_math.unflatten(unit, rhs)))

    matrix = tf.map_fn(column, basis, fn_output_signature=flat_rhs.dtype)
    matrix = 0.5 * (matrix + tf.transpose(matrix))
    flat_solution = tf.linalg.solve(matrix, flat_rhs[:, None])[:, 0]
    smallest_eigenvalue = tf.reduce_min(tf.linalg.eigvalsh(matrix))
    return SolverResult(
        solution=tree_math.unflatten(flat_solution, rhs),
        hvp_count=tf.constant(size),
        negative_curvature=smallest_eigenvalue <= 0,
        iterations=tf.constant(1),
    )


SOLVERS = {
    "identity": identity,
    "neumann": neumann,
    "conjugate_gradient": conjugate_gradient,
    "cg": conjugate_gradient,
    "exact": exact,
}
