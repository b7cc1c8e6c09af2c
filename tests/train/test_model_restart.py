"""`AutoSimulateTrainer.reinitialize_every`: theta restarts from fresh weights every K outer iterations."""

import gin
import numpy as np

from autosimulate_tf import configs
from autosimulate_tf.data.real import xor_mixture_real_data
from autosimulate_tf.models import mlp
from autosimulate_tf.problem import Problem
from autosimulate_tf.simulators import GaussianMixtureSimulator
from autosimulate_tf.train import AutoSimulateTrainer, train_autosimulate


def trainer(**settings):
    gin.clear_config()
    problem = Problem(simulator=GaussianMixtureSimulator(), real_data=xor_mixture_real_data(num_test=50), model_fn=mlp)
    return AutoSimulateTrainer(problem=problem, num_samples=64, **settings)


def test_restarts_follow_the_schedule_and_train_the_initial_steps():
    restarting = trainer(reinitialize_every=2, num_initial_inner_steps=7, num_inner_steps=3)
    history = [restarting.step() for _ in range(5)]
    assert [m["model_restarted"] for m in history] == [False, False, True, False, True]
    assert [m["model_steps"] for m in history] == [7, 10, 17, 20, 27]


def test_a_restart_sets_fresh_initial_weights_and_zeroes_the_optimizer_and_solver_state():
    restarting = trainer(reinitialize_every=2, num_initial_inner_steps=20, num_inner_steps=5)
    for _ in range(2):
        restarting.step()
    assert any(np.any(z.numpy() != 0) for z in restarting.previous_z), "the solver warm start is in use"
    seed = restarting.restarts.seed_at(2)
    restarting.restarts.restart(2, restarting.model, restarting.inner_optimizer, restarting.previous_z)
    # The weights a model built with that seed starts from (the factories' seeding is exact).
    fresh = restarting.problem.build_model(seed=seed)
    for variable, expected in zip(restarting.model.trainable_variables, fresh.trainable_variables, strict=True):
        np.testing.assert_array_equal(variable.numpy(), expected.numpy())
    for variable in restarting.inner_optimizer.variables:
        if "learning_rate" in variable.name:
            assert float(variable.numpy()) > 0
        else:
            assert not np.any(variable.numpy()), variable.name
    assert all(not np.any(z.numpy()) for z in restarting.previous_z)
    assert len({restarting.restarts.seed_at(k) for k in (2, 4, 6)}) == 3, "each restart draws new weights"


def test_without_restarts_nothing_restarts():
    plain = trainer(num_initial_inner_steps=7, num_inner_steps=3)
    history = [plain.step() for _ in range(3)]
    assert [m["model_restarted"] for m in history] == [False, False, False]
    assert history[-1]["model_steps"] == 13


def test_a_run_resumed_between_restarts_ends_like_an_uninterrupted_one(tmp_path):
    bindings = [
        "AutoSimulateTrainer.reinitialize_every = 3",
        "AutoSimulateTrainer.num_initial_inner_steps = 20",
        "train_autosimulate.checkpoint_interval = 4",
        "train_autosimulate.log_interval = 1000",
    ]

    def run(root_dir, iterations, history=None):
        gin.clear_config()
        configs.parse_gin(["toy_gmm.gin"], [*bindings, f"train_autosimulate.num_outer_iterations = {iterations}"])
        return train_autosimulate(root_dir=str(root_dir), history=history)

    uninterrupted = run(tmp_path / "uninterrupted", 8)
    run(tmp_path / "interrupted", 4)  # stops at the checkpoint after iteration 4, past the restart at 3
    history = []
    resumed = run(tmp_path / "interrupted", 8, history)  # restarts again at iteration 6
    assert [m["iteration"] for m in history] == [5, 6, 7, 8], "must continue, not start over"
    assert [m["model_restarted"] for m in history] == [False, False, True, False]
    np.testing.assert_array_equal(
        np.array(resumed["final_psi"]["means"]), np.array(uninterrupted["final_psi"]["means"])
    )
    for key in ("val_accuracy", "val_loss", "model_steps"):
        assert resumed[key] == uninterrupted[key], key
    # Iteration 0 and the restarts at 3 and 6 train 20 steps, the other five E = 30.
    assert uninterrupted["model_steps"] == 3 * 20 + 5 * 30
