"""Stroke skeletons of the procedural digits: a data table (DESIGN.md section 5).

`GLYPHS[digit]` is a tuple of style variants `(name, strokes)`; each stroke is a polyline,
an `[n, 2]` float64 array of points in a glyph box about 0.62 wide and 1 tall (x right,
y down). `_arc` and `_poly` only build the table's point arrays; the renderer that uses
it is `autosimulate_tf.simulators.digits`.
"""

import math

import numpy as np


def _arc(cx, cy, rx, ry, start_deg, end_deg, step_deg=15.0) -> np.ndarray:
    """Points of an elliptic arc in glyph coordinates (x right, y down, angles in degrees).

    With y pointing down, 0 degrees is the right of the ellipse, 90 its bottom and
    270 (or -90) its top; the arc runs from `start_deg` to `end_deg` in either
    direction. 15-degree steps keep a full-box circle within ~0.1 px of round.
    """
    num_points = max(2, math.ceil(abs(end_deg - start_deg) / step_deg) + 1)
    angles = np.deg2rad(np.linspace(start_deg, end_deg, num_points))
    return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1)


def _poly(*parts) -> np.ndarray:
    """One connected stroke from points `(x, y)` and/or point arrays, in drawing order."""
    return np.concatenate([np.atleast_2d(np.asarray(part, dtype=np.float64)) for part in parts])


# Stroke skeletons in a glyph box about 0.62 wide and 1 tall (x right, y down): the UCI
# bitmaps are ~20 px wide and 32 px tall for every digit but 1. Each variant is a tuple of
# strokes (polylines); the shapes follow how the UCI writers drew (thick 1s with a flag
# and often a base, curly-bottomed 2s, flat-topped 3s, closed 4s, barred 7s, ...).
GLYPHS = {
    0: (
        ("oval", (_arc(0.31, 0.5, 0.31, 0.5, -90, 270),)),
        ("overshoot", (_poly(_arc(0.31, 0.5, 0.31, 0.5, -80, 285), (0.42, 0.12)),)),
    ),
    1: (
        ("plain", (_poly((0.3, 0.0), (0.3, 1.0)),)),
        ("flag", (_poly((0.06, 0.24), (0.3, 0.0), (0.3, 1.0)),)),
        ("flag_base", (_poly((0.06, 0.24), (0.3, 0.0), (0.3, 1.0)), _poly((0.04, 1.0), (0.56, 1.0)))),
    ),
    2: (
        ("plain", (_poly(_arc(0.31, 0.28, 0.29, 0.28, 200, 395), (0.0, 1.0), (0.62, 1.0)),)),
        (
            "curly",
            (
                _poly(
                    _arc(0.31, 0.28, 0.29, 0.28, 200, 395),
                    (0.12, 0.8),
                    _arc(0.1, 0.88, 0.08, 0.08, 290, 30),
                    (0.62, 0.97),
                ),
            ),
        ),
    ),
    3: (
        ("round", (_poly(_arc(0.3, 0.26, 0.28, 0.25, 200, 430), (0.18, 0.5), _arc(0.3, 0.74, 0.31, 0.26, 250, 520)),)),
        ("flat_top", (_poly((0.02, 0.0), (0.58, 0.0), (0.22, 0.42), _arc(0.3, 0.71, 0.31, 0.29, 245, 520)),)),
    ),
    4: (
        ("closed", (_poly((0.45, 0.0), (0.0, 0.66), (0.64, 0.66)), _poly((0.45, 0.0), (0.45, 1.0)))),
        ("open", (_poly((0.08, 0.0), (0.0, 0.6), (0.64, 0.6)), _poly((0.48, 0.08), (0.48, 1.0)))),
    ),
    5: (
        ("plain", (_poly((0.6, 0.0), (0.1, 0.0), (0.05, 0.45), _arc(0.3, 0.69, 0.3, 0.29, 215, 505)),)),
        (
            "separate_bar",
            (
                _poly((0.12, 0.02), (0.06, 0.42), _arc(0.29, 0.68, 0.31, 0.3, 225, 520)),
                _poly((0.12, 0.02), (0.62, 0.0)),
            ),
        ),
    ),
    6: (
        ("curved", (_poly(_arc(0.58, 0.62, 0.55, 0.62, 255, 150), _arc(0.33, 0.73, 0.27, 0.26, 150, -200)),)),
        ("straight", (_poly((0.55, 0.0), (0.05, 0.72), _arc(0.31, 0.74, 0.26, 0.26, 165, -200)),)),
    ),
    7: (
        ("plain", (_poly((0.0, 0.0), (0.62, 0.0), (0.22, 1.0)),)),
        ("bar", (_poly((0.0, 0.0), (0.62, 0.0), (0.22, 1.0)), _poly((0.15, 0.52), (0.6, 0.52)))),
        ("serif_bar", (_poly((0.0, 0.18), (0.0, 0.0), (0.62, 0.0), (0.22, 1.0)), _poly((0.15, 0.52), (0.6, 0.52)))),
    ),
    8: (
        ("stacked", (_arc(0.31, 0.25, 0.23, 0.25, -90, 270), _arc(0.31, 0.74, 0.29, 0.26, -90, 270))),
        (
            "crossed",
            (_poly(_arc(0.31, 0.25, 0.24, 0.25, -20, -220), _arc(0.31, 0.74, 0.29, 0.26, -40, 220), (0.535, 0.16)),),
        ),
    ),
    9: (
        ("straight", (_arc(0.3, 0.28, 0.29, 0.28, 0, 360), _poly((0.59, 0.28), (0.56, 1.0)))),
        (
            "hooked",
            (
                _arc(0.3, 0.26, 0.29, 0.26, 0, 360),
                _poly((0.59, 0.26), (0.58, 0.72), _arc(0.34, 0.72, 0.24, 0.26, 0, 150)),
            ),
        ),
    ),
}
