"""The names of everything a run reports: one module owns them, one name per quantity.

`results.json` (written by `train_autosimulate`), the trainer's per-iteration metrics,
the fresh-model evaluations and the comparison's curve points all use these names, and
the tests import them from here rather than spelling them out.

Accuracies exist for classification only: for a regression problem (loss
`squared_error`) every accuracy entry is `None` (JSON `null`) and losses are compared
instead.
"""

# ---- Costs: what a method spent, cumulative ----
SIMULATED_SAMPLES = "simulated_samples"  # latents sampled and rendered
MODEL_STEPS = "model_steps"  # task-model gradient steps (inner steps, or from-scratch training steps)
HVP_COUNT = "hvp_count"  # curvature-vector products (Hessian or Gauss-Newton)
OBJECTIVE_EVALUATIONS = "objective_evaluations"  # validation-loss evaluations that drive psi
WALL_CLOCK_S = "wall_clock_s"  # the method's own timed work, in seconds
RENDER_WALL_CLOCK_S = "render_wall_clock_s"  # the part of wall_clock_s spent sampling and rendering
COSTS = (SIMULATED_SAMPLES, MODEL_STEPS, HVP_COUNT, OBJECTIVE_EVALUATIONS, WALL_CLOCK_S, RENDER_WALL_CLOCK_S)
CLOCKS = (WALL_CLOCK_S, RENDER_WALL_CLOCK_S)  # the float-valued costs

# ---- Scores on the real data (accuracy: None for regression) ----
VAL_LOSS = "val_loss"
VAL_ACCURACY = "val_accuracy"
TEST_LOSS = "test_loss"
TEST_ACCURACY = "test_accuracy"
SCORES = (VAL_LOSS, VAL_ACCURACY, TEST_LOSS, TEST_ACCURACY)
# The warm-started model before the first psi update (after the first inner training).
INITIAL_SCORES = tuple(f"initial_{name}" for name in SCORES)

# ---- The trainer's counters (checkpointed; integers) ----
DROPPED_SAMPLES = "dropped_samples"  # renders that failed and were left out
NONFINITE_INNER_GRADIENTS = "nonfinite_inner_gradients"  # inner minibatch gradients replaced by zeros
SKIPPED_UPDATES = "skipped_updates"  # psi updates skipped for a non-finite hypergradient
TRAINER_COUNTERS = (
    SIMULATED_SAMPLES,
    NONFINITE_INNER_GRADIENTS,
    DROPPED_SAMPLES,
    MODEL_STEPS,
    HVP_COUNT,
    OBJECTIVE_EVALUATIONS,
    SKIPPED_UPDATES,
)

# ---- results.json ----
FINAL_PSI = "final_psi"  # the last psi iterate (what the checkpoint holds), constrained, by name
OUTER_ITERATIONS = "outer_iterations"
# Warnings that the hypergradient could not be trusted (train/diagnostics.py): `kind`, `iteration`, `message`.
HYPERGRADIENT_WARNINGS = "hypergradient_warnings"
# Present in every results.json (the scores of the warm-started model at the end of the run).
RESULTS_KEYS = (
    FINAL_PSI,
    *SCORES,
    *INITIAL_SCORES,
    OUTER_ITERATIONS,
    *CLOCKS,
    *TRAINER_COUNTERS,
    HYPERGRADIENT_WARNINGS,
)
# Written by the post-run hand-off when it is asked to (train/hand_off.py).
AVERAGED_PSI = "averaged_psi"
AVERAGED_PSI_ITERATIONS = "averaged_psi_iterations"
SELECTED_PSI = "selected_psi"
SELECTED_PSI_CANDIDATE = "selected_psi_candidate"
PSI_SELECTION = "psi_selection"
SELECTION_SIMULATED_SAMPLES = "selection_simulated_samples"
FINAL_MODEL = "final_model"
REAL_DATA_REFERENCE = "real_data_reference"
HAND_OFF_KEYS = (
    AVERAGED_PSI,
    AVERAGED_PSI_ITERATIONS,
    SELECTED_PSI,
    SELECTED_PSI_CANDIDATE,
    PSI_SELECTION,
    SELECTION_SIMULATED_SAMPLES,
    FINAL_MODEL,
    REAL_DATA_REFERENCE,
)

# ---- One fresh-model evaluation (ScratchTrainingEvaluator.evaluate) ----
FRESH_MODEL_KEYS = (*SCORES, SIMULATED_SAMPLES, DROPPED_SAMPLES, MODEL_STEPS, *CLOCKS)
# The real-data reference model (a fresh model trained on the real validation inputs).
REFERENCE_KEYS = (TEST_LOSS, TEST_ACCURACY, "training_examples", MODEL_STEPS)

# ---- A comparison curve point (one per unit of a method's work) ----
PSI = "psi"
CURVE_POINT_KEYS = (*COSTS, *SCORES, PSI)

# ---- Written when the simulator describes its renderer (`Simulator.renderer_info()`, optional) ----
RENDERER = "renderer"  # e.g. {"renderer": "mitsuba", "variant": "llvm_ad_rgb", ...}
