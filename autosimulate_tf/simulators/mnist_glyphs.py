"""Stroke skeletons of the MNIST-style digits: the procedural digits' glyphs plus MNIST's shapes.

`MNIST_GLYPHS[digit]` is a tuple of style variants `(name, strokes)`, in the format of
`digit_glyphs.GLYPHS` (polylines in a box about 0.62 wide and 1 tall, x right, y down):
every UCI variant, in the same order, followed by the shapes of `EXTRA_GLYPHS`, which
American high-school students and Census Bureau employees wrote (the writers of MNIST) and
the UCI table lacks: a 2 whose bottom is a small loop, a 4 drawn as a "u" with a long right
stem, and a 9 whose loop stays open at the stem. The 8 drawn as one stroke (`crossed`) or as
two loops (`stacked`), the open and closed 4 and the 1 with and without flag and base are
UCI variants already. Only `autosimulate_tf.simulators.mnist_digits` uses this table; the
UCI simulator keeps its own.
"""

from autosimulate_tf.simulators.digit_glyphs import GLYPHS, _arc, _poly

EXTRA_GLYPHS = {
    2: (
        (
            "looped",
            (
                _poly(
                    _arc(0.31, 0.28, 0.29, 0.28, 200, 395),
                    (0.06, 0.8),
                    _arc(0.22, 0.8, 0.16, 0.14, 180, -270),
                    (0.62, 0.97),
                ),
            ),
        ),
    ),
    4: (
        (
            "open_u",
            (
                _poly((0.04, 0.0), (0.02, 0.42), _arc(0.2, 0.42, 0.18, 0.18, 180, 90), (0.62, 0.6)),
                _poly((0.5, 0.0), (0.5, 1.0)),
            ),
        ),
    ),
    9: (("open", (_poly(_arc(0.3, 0.28, 0.29, 0.28, -40, -340), (0.56, 1.0)),)),),
}

MNIST_GLYPHS = {digit: variants + EXTRA_GLYPHS.get(digit, ()) for digit, variants in GLYPHS.items()}
