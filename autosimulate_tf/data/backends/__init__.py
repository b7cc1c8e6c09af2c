"""Render backends: where a Python/numpy renderer runs, chosen by one gin binding.

The simulator class and the gin file stay the same; one line picks the backend that
`autosimulate_tf.data.render_latents` (and so the trainer, the baselines and the
sample pictures) uses:

    render_latents.backend = @InProcessBackend()     # the default: tf.data threads
    render_latents.backend = @ProcessPoolBackend()   # local worker processes
    render_latents.backend = @RayBackend()           # Ray (pip install 'autosimulate_tf[ray]')

Latents and seeds stay on the driver (`simulator.sample_latents` runs before any
backend sees them) and every backend renders each latent with the same
`rendering.render_one_numpy`, so the rendered data, including which samples are
invalid, are identical whichever backend renders them. Invalid samples (the render
raised, returned NaN/Inf or a wrong shape, timed out, or its worker died) come back
as `valid = False` rows of finite placeholders; `pipeline.keep_valid` and the
trainer's `max_failure_rate` then drop and count them as usual.

Renderers written in TF ops (`render_with_tf_ops = True`) always run as one compiled
`tf.vectorized_map` in the driver, whatever the backend: shipping TF graphs to other
processes would cost more than it saves.

The process and Ray backends ship the simulator by pickling it; `Simulator`
pickles without its psi (see `simulators/base.py`), so `render` must depend only on
its latent.

Modules: `base` (the interface, chunking), `in_process`, `process_pool` (with
`worker_pool`, its processes), `ray_backend`, `scheduler` (the chunk loop with
deadlines and retries that both chunked backends run) and `worker` (what runs in
their workers). The backends' gin names are `autosimulate_tf.data.backends.<Class>`.
"""

from autosimulate_tf.data.backends.base import RenderBackend
from autosimulate_tf.data.backends.in_process import InProcessBackend
from autosimulate_tf.data.backends.process_pool import ProcessPoolBackend
from autosimulate_tf.data.backends.ray_backend import RayBackend
from autosimulate_tf.data.backends.worker import RenderWorkerError, render_chunk

__all__ = [
    "InProcessBackend",
    "ProcessPoolBackend",
    "RayBackend",
    "RenderBackend",
    "RenderWorkerError",
    "render_chunk",
]
