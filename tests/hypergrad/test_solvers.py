"""The linear solvers of `autosimulate_tf.hypergrad.solvers` on small dense systems.

Every solver is fed a matvec built from a dense float64 matrix, with vectors given
as a list of two tensors (shapes `[2, 2]` and `[2]`, six entries in all) so the
list structure the solvers work on is exercised. The solutions are compared with
`numpy.linalg.solve`; the product counts, the warm start, the negative-curvature
flag, the `tf.function` path and the validation of the knobs are checked too.
"""

import numpy as np
import pytest
import tensorflow as tf

from autosimulate_tf.hypergrad import solvers, tree_math

SIZE = 6
SHAPES = ([2, 2], [2])
EIGENVALUES = np.linspace(0.5, 5.0, SIZE)


def random_orthogonal(rng, size=SIZE):
    """A random orthogonal matrix (QR of a Gaussian matrix)."""
    orthogonal, _ = np.linalg.qr(rng.normal(size=(size, size)))
    return orthogonal


def spd_matrix(seed, eigenvalues=EIGENVALUES):
    """`Q diag(eigenvalues) Q^T` with a random orthogonal `Q`."""
    orthogonal = random_orthogonal(np.random.default_rng(seed))
    return orthogonal @ np.diag(eigenvalues) @ orthogonal.T


def to_list(flat):
    """Splits a length-6 numpy vector into float64 tensors shaped like `SHAPES`."""
    like = [tf.zeros(shape, tf.float64) for shape in SHAPES]
    return tree_math.unflatten(tf.constant(flat, tf.float64), like)


def to_numpy(vector):
    """The concatenation of a list of tensors, as numpy."""
    return tree_math.flatten(vector).numpy()


def dense_matvec(matrix):
    """`u -> A u` on lists of tensors, from a dense matrix `A`."""
    matrix = tf.constant(matrix, tf.float64)

    def matvec(vector):
        return tree_math.unflatten(tf.linalg.matvec(matrix, tree_math.flatten(vector)), vector)

    return matvec


def random_rhs(seed):
    return np.random.default_rng(seed).normal(size=SIZE)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_conjugate_gradient_matches_numpy_solve(seed):
    matrix = spd_matrix(seed)
    rhs = random_rhs(seed + 100)
    result = solvers.conjugate_gradient(dense_matvec(matrix), to_list(rhs), num_iterations=SIZE, tolerance=1e-13)
    expected = np.linalg.solve(matrix, rhs)
    # The solution keeps the list structure of the right-hand side.
    assert [tuple(t.shape) for t in result.solution] == [tuple(s) for s in SHAPES]
    np.testing.assert_allclose(to_numpy(result.solution), expected, rtol=1e-9, atol=1e-10)
    iterations = int(result.iterations)
    assert 1 <= iterations <= SIZE
    # Without a warm start every iteration costs exactly one product.
    assert int(result.hvp_count) == iterations
    assert not bool(result.negative_curvature)


def test_conjugate_gradient_warm_start_costs_one_extra_product():
    matrix = spd_matrix(3)
    rhs = random_rhs(103)
    guess = to_list(np.random.default_rng(7).normal(size=SIZE))
    result = solvers.conjugate_gradient(
        dense_matvec(matrix), to_list(rhs), initial_guess=guess, num_iterations=SIZE, tolerance=1e-13
    )
    np.testing.assert_allclose(to_numpy(result.solution), np.linalg.solve(matrix, rhs), rtol=1e-9, atol=1e-10)
    assert int(result.iterations) >= 1
    assert int(result.hvp_count) == int(result.iterations) + 1


def test_conjugate_gradient_truncated_is_inexact_and_counts_its_products():
    """With fewer iterations than the dimension, CG stops at the cap (the cap is honoured)."""
    matrix = spd_matrix(4)
    rhs = random_rhs(104)
    result = solvers.conjugate_gradient(dense_matvec(matrix), to_list(rhs), num_iterations=2, tolerance=1e-13)
    assert int(result.iterations) == 2
    assert int(result.hvp_count) == 2
    error = np.linalg.norm(to_numpy(result.solution) - np.linalg.solve(matrix, rhs))
    assert error > 1e-6


def test_conjugate_gradient_warm_started_at_the_solution_stops_immediately():
    matrix = spd_matrix(5)
    rhs = random_rhs(105)
    solution = np.linalg.solve(matrix, rhs)
    result = solvers.conjugate_gradient(
        dense_matvec(matrix), to_list(rhs), initial_guess=to_list(solution), num_iterations=SIZE, tolerance=1e-10
    )
    assert int(result.iterations) == 0
    # Only the product that computes the initial residual.
    assert int(result.hvp_count) == 1
    np.testing.assert_allclose(to_numpy(result.solution), solution, rtol=1e-12, atol=1e-14)
    assert not bool(result.negative_curvature)


@pytest.mark.parametrize("seed", [0, 1])
def test_neumann_converges_to_numpy_solve(seed):
    matrix = spd_matrix(seed)
    rhs = random_rhs(seed + 100)
    expected = np.linalg.solve(matrix, rhs)
    step_size = 1.0 / EIGENVALUES.max()
    errors = []
    for num_terms in (10, 50, 400):
        result = solvers.neumann(dense_matvec(matrix), to_list(rhs), num_terms=num_terms, step_size=step_size)
        assert int(result.hvp_count) == num_terms - 1
        assert not bool(result.negative_curvature)
        errors.append(np.linalg.norm(to_numpy(result.solution) - expected))
    # The truncation error shrinks geometrically (factor 1 - lambda_min / lambda_max = 0.9 per term) ...
    assert errors[0] > errors[1] > errors[2]
    assert errors[0] > 1e-2
    # ... and 400 terms solve the system to round-off: 0.9^400 / lambda_min ~ 1e-18.
    np.testing.assert_allclose(to_numpy(result.solution), expected, rtol=1e-9, atol=1e-10)


def test_neumann_single_term_is_scaled_rhs():
    # 0.25 is exact in float32 as well, so this isolates the series from the coefficient rounding below.
    rhs = random_rhs(106)
    result = solvers.neumann(dense_matvec(spd_matrix(6)), to_list(rhs), num_terms=1, step_size=0.25)
    np.testing.assert_allclose(to_numpy(result.solution), 0.25 * rhs, rtol=1e-15)
    assert int(result.hvp_count) == 0


# Python-float coefficients must not be rounded to float32 before the cast.
def test_neumann_step_size_keeps_float64_precision():
    rhs = random_rhs(106)
    result = solvers.neumann(dense_matvec(spd_matrix(6)), to_list(rhs), num_terms=1, step_size=0.3)
    np.testing.assert_allclose(to_numpy(result.solution), 0.3 * rhs, rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_exact_matches_numpy_solve(seed):
    matrix = spd_matrix(seed)
    rhs = random_rhs(seed + 100)
    result = solvers.exact(dense_matvec(matrix), to_list(rhs))
    np.testing.assert_allclose(to_numpy(result.solution), np.linalg.solve(matrix, rhs), rtol=1e-10, atol=1e-12)
    assert [tuple(t.shape) for t in result.solution] == [tuple(s) for s in SHAPES]
    assert int(result.hvp_count) == SIZE
    assert not bool(result.negative_curvature)


def test_exact_solves_a_non_diagonal_system_in_the_right_orientation():
    """A symmetric matrix with distinct rows catches a transposed or permuted assembly."""
    matrix = spd_matrix(9, eigenvalues=np.array([0.5, 1.0, 2.0, 4.0, 8.0, 16.0]))
    rhs = np.arange(1.0, SIZE + 1.0)
    result = solvers.exact(dense_matvec(matrix), to_list(rhs))
    np.testing.assert_allclose(matrix @ to_numpy(result.solution), rhs, rtol=1e-10, atol=1e-12)


def test_identity_returns_the_rhs():
    rhs = random_rhs(107)
    calls = []

    def counting_matvec(vector):
        calls.append(1)
        return vector

    result = solvers.identity(counting_matvec, to_list(rhs), initial_guess=to_list(np.ones(SIZE)))
    np.testing.assert_array_equal(to_numpy(result.solution), rhs)
    assert int(result.hvp_count) == 0
    assert not calls
    assert not bool(result.negative_curvature)


def indefinite_matrix(seed):
    """`Q diag(1, -1, 2, 3, 4, 5) Q^T`: one negative eigenvalue."""
    return spd_matrix(seed, eigenvalues=np.array([1.0, -1.0, 2.0, 3.0, 4.0, 5.0]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_conjugate_gradient_reports_negative_curvature(seed):
    # A random rhs has components along every eigenvector, so the Krylov space reaches the whole
    # space; the tridiagonal Lanczos matrix is then similar to A and (Sylvester) one of the CG
    # pivots p.Ap / r.r must be negative before CG can converge.
    matrix = indefinite_matrix(seed)
    rhs = random_rhs(seed + 200)
    result = solvers.conjugate_gradient(dense_matvec(matrix), to_list(rhs), num_iterations=SIZE, tolerance=1e-13)
    assert bool(result.negative_curvature)
    assert bool(tree_math.all_finite(result.solution))
    assert 1 <= int(result.iterations) <= SIZE


def test_conjugate_gradient_negative_curvature_on_the_first_direction_keeps_the_start():
    """When the very first direction has p.Ap < 0, CG stops and returns its (zero) starting point."""
    matrix = np.diag([1.0, -1.0, 2.0, 3.0, 4.0, 5.0])
    rhs = np.array([0.1, 1.0, 0.1, 0.1, 0.1, 0.1])
    assert rhs @ matrix @ rhs < 0
    result = solvers.conjugate_gradient(dense_matvec(matrix), to_list(rhs), num_iterations=SIZE, tolerance=1e-13)
    assert bool(result.negative_curvature)
    assert int(result.iterations) == 1
    assert int(result.hvp_count) == 1
    np.testing.assert_array_equal(to_numpy(result.solution), np.zeros(SIZE))


def test_exact_reports_negative_curvature():
    matrix = indefinite_matrix(0)
    rhs = random_rhs(201)
    result = solvers.exact(dense_matvec(matrix), to_list(rhs))
    assert bool(result.negative_curvature)
    # An indefinite but non-singular system is still solved exactly.
    np.testing.assert_allclose(to_numpy(result.solution), np.linalg.solve(matrix, rhs), rtol=1e-10, atol=1e-12)


def test_solvers_inside_tf_function_match_eager():
    matrix = spd_matrix(8)
    rhs = to_list(random_rhs(108))
    guess = to_list(np.random.default_rng(8).normal(size=SIZE))
    matvec = dense_matvec(matrix)

    def run_all(rhs, guess):
        cg = solvers.conjugate_gradient(matvec, rhs, initial_guess=guess, num_iterations=SIZE, tolerance=1e-13)
        exact = solvers.exact(matvec, rhs)
        neumann = solvers.neumann(matvec, rhs, num_terms=20, step_size=0.2)
        return cg, exact, neumann

    eager = run_all(rhs, guess)
    graph = tf.function(run_all)(rhs, guess)
    expected = np.linalg.solve(matrix, to_numpy(rhs))
    for eager_result, graph_result in zip(eager, graph, strict=True):
        np.testing.assert_allclose(
            to_numpy(graph_result.solution), to_numpy(eager_result.solution), rtol=1e-12, atol=1e-13
        )
        assert int(graph_result.hvp_count) == int(eager_result.hvp_count)
        assert int(graph_result.iterations) == int(eager_result.iterations)
        assert bool(graph_result.negative_curvature) == bool(eager_result.negative_curvature)
    # The graph-mode CG and exact solutions are the actual solution, not just equal to eager.
    np.testing.assert_allclose(to_numpy(graph[0].solution), expected, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(to_numpy(graph[1].solution), expected, rtol=1e-10, atol=1e-12)


def test_negative_curvature_flag_inside_tf_function():
    matrix = indefinite_matrix(1)
    rhs = to_list(random_rhs(201))
    matvec = dense_matvec(matrix)
    cg = tf.function(lambda v: solvers.conjugate_gradient(matvec, v, num_iterations=SIZE, tolerance=1e-13))(rhs)
    exact = tf.function(lambda v: solvers.exact(matvec, v))(rhs)
    assert bool(cg.negative_curvature)
    assert bool(exact.negative_curvature)


@pytest.mark.parametrize(
    "solver, knobs, setting",
    [
        (solvers.conjugate_gradient, {"num_iterations": 0}, "num_iterations"),
        (solvers.neumann, {"num_terms": 0}, "num_terms"),
        (solvers.neumann, {"step_size": 0.0}, "step_size"),
        (solvers.neumann, {"step_size": -0.1}, "step_size"),
    ],
)
def test_bad_knobs_raise_value_error_naming_the_setting(solver, knobs, setting):
    matvec = dense_matvec(spd_matrix(0))
    with pytest.raises(ValueError, match=setting):
        solver(matvec, to_list(random_rhs(0)), **knobs)


def test_solver_registry_names():
    assert solvers.SOLVERS["cg"] is solvers.conjugate_gradient
    assert solvers.SOLVERS["conjugate_gradient"] is solvers.conjugate_gradient
    assert solvers.SOLVERS["neumann"] is solvers.neumann
    assert solvers.SOLVERS["exact"] is solvers.exact
    assert solvers.SOLVERS["identity"] is solvers.identity
