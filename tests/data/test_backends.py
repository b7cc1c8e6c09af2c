"""Render backends (`autosimulate_tf.data.backends`): same results wherever a renderer runs.

Latents are sampled on the driver, so the in-process, process-pool and Ray backends must
return exactly the same `(inputs, labels, valid)` for the same latents, validity masks of
injected faults included. The process backends must also survive what threads cannot:
a worker that dies (the chunk it was rendering becomes invalid after its retries, every
other chunk is rendered and the next call works) and a render stuck in C code holding the
GIL (the chunk deadline kills the worker, the chunk becomes invalid, wall time stays
bounded). One gin binding must switch the backend of `render_latents`, a misspelled one
must raise, and two outer iterations of the trainer must give the same psi either way.

Worker pools and the Ray instance are module-scoped: starting workers (each imports
TensorFlow) costs seconds on a 2-core machine.
"""

import logging
import os
import signal
import sys
import time

import gin
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from autosimulate_tf import configs
from autosimulate_tf.data import InProcessBackend, ProcessPoolBackend, RayBackend, pipeline, render_latents, rendering
from autosimulate_tf.data.real import xor_mixture_real_data
from autosimulate_tf.errors import ConfigError
from autosimulate_tf.models import mlp
from autosimulate_tf.problem import Problem
from autosimulate_tf.simulators import (
    FaultInjectingSimulator,
    GaussianMixtureSimulator,
    ProceduralDigitsSimulator,
    Simulator,
    SlowRenderSimulator,
)
from autosimulate_tf.train import AutoSimulateTrainer

tfd = tfp.distributions

SEED = tf.constant([4, 2])


class DyingSimulator(Simulator):
    """`x = (value, 2 value)`, label `int(value) % 2`; some values kill or wedge the worker process.

    `die_at`: the process exits at once (`os._exit`), as on a segfault. `die_once_at`: it
    exits only the first time (a marker file remembers), as on a flaky crash. `wedge_at`:
    a C loop that holds the GIL for hours, which no signal can interrupt. Never render
    these values in the test process itself.
    """

    observation_shape = (2,)
    num_classes = 2
    render_with_tf_ops = False

    def __init__(self, die_at=(), die_once_at=(), marker_dir=None, wedge_at=()):
        super().__init__(name="dying")
        self.die_at = tuple(die_at)
        self.die_once_at = tuple(die_once_at)
        self.marker_dir = marker_dir
        self.wedge_at = tuple(wedge_at)
        self.add_parameter("loc", 0.0)

    def latent_distribution(self):
        return tfd.JointDistributionNamed({"value": tfd.Normal(self.parameter("loc"), 1.0)})

    def render(self, latent):
        value = float(latent["value"])
        if value in self.die_at:
            os._exit(1)
        if value in self.die_once_at:
            marker = os.path.join(self.marker_dir, f"died_at_{value}")
            if not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)
        if value in self.wedge_at:
            sum(range(10**14))  # Runs in C without checking for signals: SIGALRM waits for it.
        return np.array([value, 2.0 * value], np.float32), int(value) % 2


def value_latents(values):
    return {"value": tf.constant(np.asarray(values, np.float32))}


def assert_same(actual, expected):
    """Exact equality of `(inputs, labels, valid)` triples, dtypes included."""
    for name, got, want in zip(("inputs", "labels", "valid"), actual, expected, strict=True):
        got, want = np.asarray(got), np.asarray(want)
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)


def faulty_gmm():
    """GMM through the numpy render path, with ~30% of samples raising, NaN or wrongly shaped."""
    return FaultInjectingSimulator(
        simulator=GaussianMixtureSimulator(), raise_rate=0.1, nan_rate=0.1, wrong_shape_rate=0.1, seed=5
    )


@pytest.fixture(scope="module")
def pool():
    """A warm 2-worker pool, shared by the tests (and by gin-built `ProcessPoolBackend(num_workers=2)`)."""
    backend = ProcessPoolBackend(num_workers=2, chunk_size=4)
    backend.warm_up()
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def lone_worker():
    """A 1-worker pool for the tests that kill workers (restarting one worker is the cheapest)."""
    backend = ProcessPoolBackend(num_workers=1, chunk_size=4, max_retries=1, deadline_grace_s=1.0)
    backend.warm_up()
    yield backend
    backend.close()


@pytest.mark.parametrize(
    "make_simulator",
    [
        faulty_gmm,
        lambda: SlowRenderSimulator(simulator=GaussianMixtureSimulator(), work_ms=0.2),
        ProceduralDigitsSimulator,
    ],
    ids=["faulty_gmm", "slow_gmm", "digits"],
)
def test_process_pool_renders_exactly_what_in_process_renders(pool, make_simulator):
    simulator = make_simulator()
    latents = simulator.sample_latents(50, seed=SEED)  # 13 chunks of 4 (the last one short)
    expected = InProcessBackend().render(simulator, latents)
    assert_same(pool.render(simulator, latents), expected)
    if isinstance(simulator, FaultInjectingSimulator):
        assert 5 <= np.sum(~expected[2]) <= 30, "the faults must really occur"


@pytest.mark.parametrize(
    "make_simulator",
    [faulty_gmm, ProceduralDigitsSimulator],
    ids=["faulty_gmm", "digits"],
)
def test_in_process_plain_loop_renders_exactly_what_the_tf_data_map_renders(make_simulator):
    simulator = make_simulator()
    latents = simulator.sample_latents(40, seed=SEED)
    through_map = InProcessBackend(parallel_min_batch=0).render(simulator, latents, timeout_s=5.0)
    through_loop = InProcessBackend(parallel_min_batch=41).render(simulator, latents, timeout_s=5.0)
    assert_same(through_loop, through_map)
    if isinstance(simulator, FaultInjectingSimulator):
        assert 3 <= np.sum(~through_map[2]) <= 25, "the faults must really occur"


def test_in_process_backend_uses_the_plain_loop_only_below_parallel_min_batch(monkeypatch):
    simulator = faulty_gmm()
    calls = []
    monkeypatch.setattr(rendering, "render_serially", lambda *args: calls.append("loop") or (None, None, None))
    InProcessBackend(parallel_min_batch=10).render(simulator, simulator.sample_latents(9, seed=SEED))
    assert calls == ["loop"]
    InProcessBackend(parallel_min_batch=10).render(simulator, simulator.sample_latents(10, seed=SEED))
    assert calls == ["loop"], "a batch of parallel_min_batch latents goes through the tf.data map"


def test_process_pool_matches_in_process_through_render_latents_with_a_timeout(pool):
    simulator = faulty_gmm()
    latents = simulator.sample_latents(30, seed=SEED)
    expected = render_latents(simulator, latents, render_timeout_s=5.0)
    got = render_latents(simulator, latents, render_timeout_s=5.0, backend=pool)
    assert_same(got, expected)
    assert isinstance(got.inputs, tf.Tensor)


def test_a_hung_python_render_is_interrupted_in_its_worker_and_only_that_sample_is_invalid(pool):
    # hang_s=60 sleeps: without the per-sample timeout one call would take a minute.
    simulator = FaultInjectingSimulator(simulator=GaussianMixtureSimulator(), hang_rate=0.1, hang_s=60.0, seed=1)
    latents = simulator.sample_latents(40, seed=SEED)
    flat = [leaf.numpy() for leaf in tf.nest.flatten(latents)]
    hangs = np.array(
        [
            simulator.fault_for(tf.nest.pack_sequence_as(latents, [leaf[i] for leaf in flat])) == "hang"
            for i in range(40)
        ]
    )
    assert 1 <= hangs.sum() <= 10
    starts = pool.pool.starts
    begin = time.monotonic()
    observations, labels, valid = pool.render(simulator, latents, timeout_s=0.5)
    assert time.monotonic() - begin < 0.5 * hangs.sum() + 5.0
    np.testing.assert_array_equal(valid, ~hangs)
    assert pool.pool.starts == starts, "a signal stops a Python hang: no worker needs killing"
    expected = InProcessBackend().render(simulator, latents, timeout_s=0.5)
    assert_same((observations, labels, valid), expected)


def test_a_dying_worker_costs_only_its_chunk_after_retries_and_the_next_call_works(lone_worker, tmp_path):
    # Chunks of 4: value 5 kills its worker every time ([4, 8) is lost after 1 retry); value 13
    # kills it once ([12, 16) is rendered on the retry).
    values = np.arange(24, dtype=np.float32)
    simulator = DyingSimulator(die_at=(5.0,), die_once_at=(13.0,), marker_dir=str(tmp_path))
    expected = InProcessBackend().render(DyingSimulator(), value_latents(values))
    starts = lone_worker.pool.starts
    observations, labels, valid = lone_worker.render(simulator, value_latents(values), timeout_s=30.0)
    lost = (values >= 4) & (values < 8)
    np.testing.assert_array_equal(valid, ~lost)
    np.testing.assert_array_equal(observations[~lost], expected[0][~lost])
    np.testing.assert_array_equal(labels[~lost], expected[1][~lost])
    assert np.all(observations[lost] == 0), "lost samples hold finite placeholders"
    assert os.path.exists(tmp_path / "died_at_13.0")
    # Two deaths at 5 (try + 1 retry) and one at 13, each followed by a restart.
    assert lone_worker.pool.starts == starts + 3
    # The pool works on: the next call (without the fatal value) renders everything.
    shifted = values + 0.5
    assert_same(
        lone_worker.render(simulator, value_latents(shifted)),
        InProcessBackend().render(DyingSimulator(), value_latents(shifted)),
    )


def test_a_render_wedged_in_c_hits_the_chunk_deadline_and_the_pool_is_restarted(lone_worker):
    values = np.arange(12, dtype=np.float32)
    simulator = DyingSimulator(wedge_at=(6.0,))
    old_pids = set(lone_worker.pool.executor._processes)
    starts = lone_worker.pool.starts
    begin = time.monotonic()
    _, _, valid = lone_worker.render(simulator, value_latents(values), timeout_s=0.25)
    # Deadline 0.25 s x 4 + 1 s grace, then one worker restart (a few seconds); the wedge itself runs for hours.
    assert time.monotonic() - begin < 30
    np.testing.assert_array_equal(valid, (values < 4) | (values >= 8))
    assert lone_worker.pool.starts == starts + 1
    for pid in old_pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # the wedged worker is gone, not abandoned
    values = values + 0.5
    assert_same(
        lone_worker.render(simulator, value_latents(values), timeout_s=0.25),
        InProcessBackend().render(simulator, value_latents(values)),
    )


def test_a_worker_killed_between_calls_is_replaced(lone_worker):
    lone_worker.warm_up()
    (pid,) = lone_worker.pool.executor._processes
    os.kill(pid, signal.SIGKILL)  # as the OOM killer would, while the pool is idle
    time.sleep(0.5)
    starts = lone_worker.pool.starts
    latents = value_latents(np.arange(6, dtype=np.float32))
    assert_same(lone_worker.render(DyingSimulator(), latents), InProcessBackend().render(DyingSimulator(), latents))
    assert lone_worker.pool.starts == starts + 1


def test_an_unpicklable_simulator_fails_with_a_clear_error(pool):
    class Local(DyingSimulator):  # A class defined in a function cannot be pickled.
        pass

    with pytest.raises(TypeError, match=r"ProcessPoolBackend ships the simulator .* Local cannot be pickled"):
        pool.render(Local(), value_latents([1.0, 2.0]))


def test_one_gin_binding_switches_render_latents_to_the_process_pool(pool):
    simulator = faulty_gmm()
    latents = simulator.sample_latents(16, seed=SEED)
    expected = render_latents(simulator, latents)
    before = pool.pool.chunks_rendered
    configs.parse_gin([], ["render_latents.backend = @ProcessPoolBackend()", "ProcessPoolBackend.num_workers = 2"])
    assert_same(render_latents(simulator, latents), expected)
    assert pool.pool.chunks_rendered > before, "the gin-built backend must have rendered in the shared pool"
    # The module-qualified name is the same configurable.
    gin.clear_config()
    configs.parse_gin([], ["autosimulate_tf.data.pipeline.render_latents.backend = @InProcessBackend()"])
    before = pool.pool.chunks_rendered
    assert_same(render_latents(simulator, latents), expected)
    assert pool.pool.chunks_rendered == before


def test_tf_op_renderers_stay_in_process_and_say_so_once(pool, caplog, monkeypatch):
    monkeypatch.setattr(pipeline, "_LOGGED_TF_OP_BACKENDS", set())
    caplog.set_level(logging.INFO, logger="absl")
    simulator = GaussianMixtureSimulator()
    latents = simulator.sample_latents(20, seed=SEED)
    expected = render_latents(simulator, latents)
    before = pool.pool.chunks_rendered
    for _ in range(2):
        assert_same(render_latents(simulator, latents, backend=pool), expected)
    assert pool.pool.chunks_rendered == before
    messages = [record.getMessage() for record in caplog.records if "vectorized_map" in record.getMessage()]
    assert len(messages) == 1 and "ProcessPoolBackend" in messages[0], messages


@pytest.mark.parametrize(
    ("binding", "message"),
    [
        ("render_latents.backnd = @ProcessPoolBackend()", "backnd"),
        ("render_latents.backend = @ProcesPoolBackend()", "ProcesPoolBackend"),
        ("render_latents.num_parallel_calls = 4", "num_parallel_calls"),  # only `backend` is configurable
        ("ProcessPoolBackend.num_worker = 2", "num_worker"),
    ],
)
def test_a_misspelled_backend_binding_raises(binding, message):
    with pytest.raises(ValueError, match=message):
        configs.parse_gin([], [binding])


@pytest.mark.parametrize(
    ("make_backend", "message"),
    [
        (lambda: InProcessBackend(num_parallel_calls=0), "InProcessBackend.num_parallel_calls=0 must be >= 1"),
        (lambda: InProcessBackend(parallel_min_batch=-1), "InProcessBackend.parallel_min_batch=-1 must be >= 0"),
        (lambda: ProcessPoolBackend(start_method="fork"), "'fork' is unsafe with TensorFlow"),
        (lambda: ProcessPoolBackend(num_workers=-2), "ProcessPoolBackend.num_workers=-2 must be >= 1"),
        (lambda: ProcessPoolBackend(chunk_size=0), "ProcessPoolBackend.chunk_size=0 must be >= 1"),
        (lambda: ProcessPoolBackend(max_retries=-1), "ProcessPoolBackend.max_retries=-1 must be >= 0"),
        (lambda: RayBackend(deadline_grace_s=-1.0), r"RayBackend.deadline_grace_s=-1.0 must be >= 0"),
        (lambda: RayBackend(num_cpus_per_task=0), "RayBackend.num_cpus_per_task=0 must be > 0"),
    ],
    ids=["parallel_calls", "min_batch", "fork", "workers", "chunk_size", "retries", "grace", "cpus"],
)
def test_a_bad_backend_setting_raises_a_config_error_naming_its_binding(make_backend, message):
    with pytest.raises(ConfigError, match=message):
        make_backend()


def train_two_iterations(bindings):
    gin.clear_config()
    configs.parse_gin([], bindings)
    simulator = FaultInjectingSimulator(simulator=GaussianMixtureSimulator(), raise_rate=0.05, nan_rate=0.05)
    trainer = AutoSimulateTrainer(
        problem=Problem(
            simulator=simulator, real_data=xor_mixture_real_data(num_validation=100, num_test=100), model_fn=mlp
        ),
        num_samples=40,
        num_initial_inner_steps=5,
        num_inner_steps=3,
        seed=1,
    )
    history = [trainer.step() for _ in range(2)]
    return [v.numpy() for v in simulator.psi_variables], history


def test_the_trainer_gives_the_same_psi_with_the_process_pool(pool):
    psi_in_process, history_in_process = train_two_iterations([])
    before = pool.pool.chunks_rendered
    psi_pool, history_pool = train_two_iterations(
        ["render_latents.backend = @ProcessPoolBackend()", "ProcessPoolBackend.num_workers = 2"]
    )
    # 40 samples in automatic chunks of 5 (four per worker): 8 chunks per iteration.
    assert pool.pool.chunks_rendered == before + 2 * 8, "both iterations rendered in the pool"
    assert [m["num_dropped"] for m in history_pool] == [m["num_dropped"] for m in history_in_process]
    assert sum(m["num_dropped"] for m in history_pool) > 0
    for pooled, local in zip(psi_pool, psi_in_process, strict=True):
        np.testing.assert_array_equal(pooled, local)
    assert not np.array_equal(psi_pool[0], GaussianMixtureSimulator().psi_variables[0].numpy()), "psi moved"


def test_ray_backend_names_the_extra_when_ray_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'autosimulate_tf\[ray\]'"):
        RayBackend().render(faulty_gmm(), value_latents([1.0]))


# ---- Ray (last: its daemons stay up until the module ends) ----


@pytest.fixture(scope="module")
def ray_backend():
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("Ray was initialised elsewhere in this process")
    # Ray workers import this module by value: they do not share the test process's sys.path.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    backend = RayBackend(chunk_size=4, max_retries=0, init_kwargs={"num_cpus": 2}, deadline_grace_s=2.0)
    backend.warm_up()
    yield backend
    backend.close()
    assert not ray.is_initialized()


def test_ray_renders_exactly_what_in_process_renders(ray_backend):
    simulator = faulty_gmm()
    latents = simulator.sample_latents(50, seed=SEED)
    expected = InProcessBackend().render(simulator, latents)
    assert np.sum(~expected[2]) >= 5
    assert_same(ray_backend.render(simulator, latents), expected)
    assert_same(render_latents(simulator, latents, render_timeout_s=5.0, backend=ray_backend), expected)
    # Python hangs are interrupted inside the Ray worker: the same samples are invalid as in-process.
    hanging = FaultInjectingSimulator(simulator=GaussianMixtureSimulator(), hang_rate=0.1, hang_s=60.0, seed=1)
    expected = InProcessBackend().render(hanging, latents, timeout_s=0.5)
    assert 1 <= np.sum(~expected[2]) <= 12
    assert_same(ray_backend.render(hanging, latents, timeout_s=0.5), expected)


def test_ray_drops_the_chunk_of_a_dead_or_wedged_worker_and_goes_on(ray_backend):
    # The first two chunks (running side by side) lose their workers: [0, 4) dies (max_retries=0),
    # [4, 8) wedges and is cancelled at its deadline (0.25 s x 4 + 8 s grace). The healthy chunks
    # [8, 16) then run on workers that Ray has just restarted; the backend waits for the warm-up
    # pings of every loss before starting them, and the 8 s grace leaves room for other TensorFlow
    # processes loading the cores. Such load can stretch the call to about a minute; the bound
    # only has to catch a wedge (hours).
    values = np.arange(16, dtype=np.float32)
    simulator = DyingSimulator(die_at=(2.0,), wedge_at=(5.0,))
    begin = time.monotonic()
    grace_s, ray_backend.deadline_grace_s = ray_backend.deadline_grace_s, 8.0
    try:
        _, _, valid = ray_backend.render(simulator, value_latents(values), timeout_s=0.25)
    finally:
        ray_backend.deadline_grace_s = grace_s
    assert time.monotonic() - begin < 180
    np.testing.assert_array_equal(valid, values >= 8)
    values = values + 0.5
    assert_same(
        ray_backend.render(simulator, value_latents(values)),
        InProcessBackend().render(simulator, value_latents(values)),
    )
