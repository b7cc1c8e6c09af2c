"""Linear algebra on lists of tensors (one tensor per model weight).

The hypergradient works with vectors in parameter space. Keeping them as lists
shaped like the model's weights avoids flattening on every Hessian-vector
product; these helpers give the few vector-space operations the solvers need.
"""

from collections.abc import Sequence

import tensorflow as tf

Vector = Sequence[tf.Tensor]


def dot(a: Vector, b: Vector) -> tf.Tensor:
    """Inner product <a, b> summed over all tensors."""
    return tf.add_n([tf.reduce_sum(x * y) for x, y in zip(a, b, strict=True)])


def norm(a: Vector) -> tf.Tensor:
    """Euclidean norm of the concatenated vector."""
    return tf.sqrt(dot(a, a))


def add(a: Vector, b: Vector) -> list[tf.Tensor]:
    """a + b."""
    return [x + y for x, y in zip(a, b, strict=True)]


def subtract(a: Vector, b: Vector) -> list[tf.Tensor]:
    """a - b."""
    return [x - y for x, y in zip(a, b, strict=True)]


def as_dtype(alpha, dtype) -> tf.Tensor:
    """A scalar coefficient in `dtype`.

    Python numbers are converted straight to `dtype`: `tf.cast(0.1, tf.float64)`
    would first round 0.1 to float32 and lose float64 precision.
    """
    if isinstance(alpha, (tf.Tensor, tf.Variable)):
        return tf.cast(alpha, dtype)
    return tf.constant(alpha, dtype=dtype)


def scale(alpha, a: Vector) -> list[tf.Tensor]:
    """alpha * a (alpha a scalar tensor or number)."""
    return [as_dtype(alpha, x.dtype) * x for x in a]


def axpy(alpha, x: Vector, y: Vector) -> list[tf.Tensor]:
    """alpha * x + y."""
    return [as_dtype(alpha, xi.dtype) * xi + yi for xi, yi in zip(x, y, strict=True)]


def zeros_like(a: Vector) -> list[tf.Tensor]:
    """A zero vector shaped like a."""
    return [tf.zeros_like(x) for x in a]


def all_finite(a: Vector) -> tf.Tensor:
    """True when every entry of every tensor is finite."""
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(x)) for x in a])


def flatten(a: Vector) -> tf.Tensor:
    """Concatenates the tensors into one 1-D tensor."""
    return tf.concat([tf.reshape(x, [-1]) for x in a], axis=0)


def unflatten(flat: tf.Tensor, like: Vector) -> list[tf.Tensor]:
    """Inverse of `flatten`: splits `flat` into tensors shaped like `like`."""
    sizes = [x.shape.num_elements() for x in like]
    pieces = tf.split(flat, sizes)
    return [tf.reshape(p, tf.shape(x)) for p, x in zip(pieces, like, strict=True)]
