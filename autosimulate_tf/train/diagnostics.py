"""Warnings when the hypergradient cannot be trusted, with the knob to change.

The progress lines show the solver residual, negative curvature and the hypergradient
norm, but a diverging solver does not stop a run: it just feeds psi noise. A
`HypergradientHealth` watches those diagnostics over a window of recent outer
iterations and raises a warning (logged, and listed under `hypergradient_warnings` in
results.json) when

  * the solver's relative residual `|(C + lambda I) z - v| / |v|` stays above
    `residual_threshold` (above 1, `z` is worse than `z = 0`: the solver diverges);
  * negative curvature (`p.Ap <= 0` in conjugate gradients, or a non-positive eigenvalue
    for `exact`) shows up on most recent iterations (the full Hessian is indefinite there);
  * the hypergradient norm grows far beyond its early median (an exploding estimate);
  * the warm-started model's real validation accuracy (classification) falls far below the
    best it reached, median over a window against the best such median: the solver can be
    healthy while a noisy score-function estimate walks psi to data the model cannot learn
    from (on the Mitsuba scenes one seed ended at 0.29 with small residuals). The window
    starts afresh `restart_settling` iterations after the model is re-initialised
    (`AutoSimulateTrainer.reinitialize_every`): a young model's accuracy says little about
    psi (on the scenes it dipped from about 0.6 to 0.26-0.38 for the five iterations after
    two of four restarts, and read as a collapse).

Each kind of warning is raised once per run (the first iteration it is seen), so a long run
does not flood the log. The thresholds are deliberately loose: a warning means the estimate
is broken, not merely noisy.
"""

import statistics

import gin
from absl import logging

from autosimulate_tf.errors import check

RESIDUAL = "solver_residual"
NEGATIVE_CURVATURE = "negative_curvature"
EXPLODING_NORM = "exploding_hypergradient"
VALIDATION_COLLAPSE = "validation_collapse"


@gin.configurable
class HypergradientHealth:
    """Watches the solver residual, negative curvature, hypergradient norm and validation accuracy (module docstring)."""

    def __init__(
        self,
        window: int = 10,
        residual_threshold: float = 1.0,
        negative_curvature_fraction: float = 0.5,
        norm_growth: float = 100.0,
        accuracy_drop: float = 0.2,
        restart_settling: int = 5,
    ):
        """Args:
        window: recent outer iterations looked at (>= 2).
        residual_threshold: warn when the median relative residual of the window exceeds it.
        negative_curvature_fraction: warn when more than this fraction of the window met
          negative curvature, in (0, 1].
        norm_growth: warn when the hypergradient norm exceeds this multiple of the median
          norm of the first `window` iterations (> 1).
        accuracy_drop: warn when the median validation accuracy of the window is more
          than this (absolute, in (0, 1]) below the best window median so far. The best is
          not checkpointed: after a restart it is relearnt from the resumed iterations.
        restart_settling: after a model re-initialisation, this many iterations (the
          restart's included) are left out of the accuracy window (>= 0).
        """
        check(window >= 2, f"HypergradientHealth.window={window} must be >= 2.")
        check(residual_threshold > 0, f"HypergradientHealth.residual_threshold={residual_threshold} must be > 0.")
        check(
            0 < negative_curvature_fraction <= 1,
            f"HypergradientHealth.negative_curvature_fraction={negative_curvature_fraction} must be in (0, 1].",
        )
        check(norm_growth > 1, f"HypergradientHealth.norm_growth={norm_growth} must be > 1.")
        check(0 < accuracy_drop <= 1, f"HypergradientHealth.accuracy_drop={accuracy_drop} must be in (0, 1].")
        check(restart_settling >= 0, f"HypergradientHealth.restart_settling={restart_settling} must be >= 0.")
        self.window = int(window)
        self.residual_threshold = float(residual_threshold)
        self.negative_curvature_fraction = float(negative_curvature_fraction)
        self.norm_growth = float(norm_growth)
        self.accuracy_drop = float(accuracy_drop)
        self.restart_settling = int(restart_settling)
        self.settling_left = 0
        self.best_accuracy = None
        self.recent = []
        self.accuracies = []  # since the last model restart
        self.early_norms = []
        self.warnings = []

    def restore(self, warnings: list[dict]) -> None:
        """Continues a resumed run: warnings raised before the restart are not raised again."""
        self.warnings = list(warnings)

    def observe(self, metrics: dict) -> list[dict]:
        """Takes one iteration's metrics; returns (and logs) the warnings it newly raises."""
        self.recent = [*self.recent, metrics][-self.window :]
        if metrics.get("model_restarted"):
            self.accuracies, self.settling_left = [], self.restart_settling
        if self.settling_left > 0:
            self.settling_left -= 1
        elif metrics.get("val_accuracy") is not None:
            self.accuracies = [*self.accuracies, metrics["val_accuracy"]][-self.window :]
        if len(self.early_norms) < self.window:
            self.early_norms.append(metrics["hypergradient_norm"])
        raised = []
        for kind, message in self._checks():
            if message and kind not in {warning["kind"] for warning in self.warnings}:
                warning = {"kind": kind, "iteration": metrics["iteration"], "message": message}
                self.warnings.append(warning)
                raised.append(warning)
                logging.warning("Outer iteration %d: %s", metrics["iteration"], message)
                print(f"WARNING (outer iteration {metrics['iteration']}): {message}", flush=True)
        return raised

    def _checks(self):
        yield RESIDUAL, self._residual_message()
        yield NEGATIVE_CURVATURE, self._curvature_message()
        yield EXPLODING_NORM, self._norm_message()
        yield VALIDATION_COLLAPSE, self._collapse_message()

    def _residual_message(self) -> str | None:
        residuals = [m["solver_residual"] for m in self.recent if m["solver_residual"] >= 0]
        if len(residuals) < min(3, self.window):
            return None
        median = statistics.median(residuals)
        if not median > self.residual_threshold:  # also true for NaN
            return None
        return (
            f"the solver's relative residual is {median:.3g} (median of the last {len(residuals)} iterations), "
            f"above {self.residual_threshold:g}: z is no approximation of (C + lambda I)^-1 v and psi follows noise. "
            "Raise HypergradientEstimator.damping, lower neumann.step_size (it must be < 2 / the largest "
            "curvature eigenvalue), or use HypergradientEstimator.solver = @conjugate_gradient with "
            "HypergradientEstimator.curvature = 'gauss_newton'."
        )

    def _curvature_message(self) -> str | None:
        if len(self.recent) < min(3, self.window):
            return None
        negative = sum(bool(m["negative_curvature"]) for m in self.recent)
        if negative <= self.negative_curvature_fraction * len(self.recent):
            return None
        return (
            f"negative curvature in {negative} of the last {len(self.recent)} iterations: the curvature is "
            "indefinite and conjugate gradients stop early. Use HypergradientEstimator.curvature = "
            "'gauss_newton' (positive semi-definite) or raise HypergradientEstimator.damping."
        )

    def _norm_message(self) -> str | None:
        if len(self.early_norms) < min(3, self.window):
            return None
        early = statistics.median(self.early_norms)
        norm = self.recent[-1]["hypergradient_norm"]
        if not (early > 0 and norm > self.norm_growth * early):
            return None
        return (
            f"the hypergradient norm {norm:.3g} is {norm / early:.3g}x its early median {early:.3g}: the estimate "
            "explodes. Raise HypergradientEstimator.damping, lower the psi learning rate "
            "(outer/keras.optimizers.Adam.learning_rate) or check the solver residual."
        )

    def _collapse_message(self) -> str | None:
        accuracies = self.accuracies
        if len(accuracies) < self.window:  # regression, or the window is not full yet (since a restart)
            return None
        median = statistics.median(accuracies)
        self.best_accuracy = median if self.best_accuracy is None else max(self.best_accuracy, median)
        if not median < self.best_accuracy - self.accuracy_drop:
            return None
        return (
            f"the warm-started model's validation accuracy fell to {median:.3f} (median of the last "
            f"{len(accuracies)} iterations) from a best of {self.best_accuracy:.3f}: psi has moved to data the "
            "model does not learn the real task from, or the estimate is too noisy to follow. Lower the psi "
            "learning rate (outer/keras.optimizers.Adam.learning_rate), raise AutoSimulateTrainer.num_samples, "
            "and hand on an earlier psi with HandOff.psi_selection_candidates."
        )
