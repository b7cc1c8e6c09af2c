"""Peak memory of one outer iteration does not grow with the number of inner steps E.

    python benchmarks/inner_steps_memory.py --output=benchmarks/results/inner_steps_memory.json

AutoSimulate never unrolls the inner training (the hypergradient comes from the
implicit function theorem at the warm-started theta), so E = 1000 inner steps must
need no more memory than E = 10. For each E, in a fresh process (so allocator state
does not leak from one measurement into the next), the benchmark builds the trainer
(GMM toy, a 2 x 1000 tanh MLP with ~1M weights, N = 2048), runs one outer iteration
to trace and warm up, then runs a second outer iteration of E inner steps while a
thread samples the resident set size every millisecond. It reports the peak RSS of
the process and the peak *increase* during the measured iteration, for each E, and
their ratios E=1000 / E=10.
"""

import json
import os
import statistics
import subprocess
import sys
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags

flags.DEFINE_list("num_inner_steps", ["10", "1000"], "The values of E to compare (first is the reference).")
flags.DEFINE_integer("num_samples", 2048, "N, samples rendered per outer iteration.")
flags.DEFINE_integer("hidden_width", 1000, "Width of the two hidden layers of the MLP.")
flags.DEFINE_integer("repeats", 2, "Fresh processes per E (alternating); the median is reported.")
flags.DEFINE_integer("measure_one", None, "Internal: measure one E in this process and print JSON.")
flags.DEFINE_string("output", "benchmarks/results/inner_steps_memory.json", "Where to write the JSON figures.")
FLAGS = flags.FLAGS


def resident_bytes() -> int:
    """Current resident set size of this process (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakSampler:
    """Samples the RSS in a background thread; `peak` is the largest value seen."""

    def __init__(self, interval_s: float = 0.001):
        self.interval_s = interval_s
        self.peak = resident_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, resident_bytes())
            time.sleep(self.interval_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, resident_bytes())


def measure_one(num_inner_steps: int) -> dict:
    """One warm-up and one measured outer iteration of E inner steps in this process."""
    import resource

    from autosimulate_tf.data import xor_mixture_real_data
    from autosimulate_tf.models import mlp
    from autosimulate_tf.problem import Problem
    from autosimulate_tf.simulators import GaussianMixtureSimulator
    from autosimulate_tf.train.trainer import AutoSimulateTrainer

    def model_fn(input_shape, num_outputs, seed):
        return mlp(input_shape, num_outputs, hidden_units=(FLAGS.hidden_width, FLAGS.hidden_width), seed=seed)

    trainer = AutoSimulateTrainer(
        problem=Problem(simulator=GaussianMixtureSimulator(), real_data=xor_mixture_real_data(), model_fn=model_fn),
        num_samples=FLAGS.num_samples,
        num_inner_steps=num_inner_steps,
        num_initial_inner_steps=num_inner_steps,
    )
    trainer.step()  # traces every tf.function; the same graphs serve any E (E is a tensor)
    before = resident_bytes()
    with PeakSampler() as sampler:
        metrics = trainer.step()
    return {
        "num_inner_steps": num_inner_steps,
        "num_weights": int(sum(v.value.shape.num_elements() for v in trainer.model.trainable_variables)),
        "rss_before_mib": before / 2**20,
        "peak_rss_mib": sampler.peak / 2**20,
        "peak_increase_mib": (sampler.peak - before) / 2**20,
        "max_rss_of_process_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10,
        "iteration_s": metrics["iteration_s"],
        "inner_s": metrics["inner_s"],
    }


def main(argv):
    del argv
    if FLAGS.measure_one is not None:
        print(json.dumps(measure_one(FLAGS.measure_one)))
        return
    runs = {int(e): [] for e in FLAGS.num_inner_steps}
    for _ in range(FLAGS.repeats):
        for num_inner_steps in runs:
            command = [
                sys.executable,
                os.path.abspath(__file__),
                f"--measure_one={num_inner_steps}",
                f"--num_samples={FLAGS.num_samples}",
                f"--hidden_width={FLAGS.hidden_width}",
            ]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            row = json.loads(output.strip().splitlines()[-1])
            runs[num_inner_steps].append(row)
            print(json.dumps(row), flush=True)

    summary = {
        e: {key: statistics.median([r[key] for r in rows]) for key in ("peak_rss_mib", "peak_increase_mib", "inner_s")}
        for e, rows in runs.items()
    }
    reference = min(runs)
    ratios = {
        e: {
            "peak_rss": summary[e]["peak_rss_mib"] / summary[reference]["peak_rss_mib"],
            "peak_increase": summary[e]["peak_increase_mib"] / summary[reference]["peak_increase_mib"],
            "inner_time": summary[e]["inner_s"] / summary[reference]["inner_s"],
        }
        for e in runs
    }
    print(f"{'E':>6} | {'peak RSS MiB':>12} | {'peak increase MiB':>17} | {'inner s':>8} | RSS ratio | increase ratio")
    for e in runs:
        print(
            f"{e:>6} | {summary[e]['peak_rss_mib']:>12.0f} | {summary[e]['peak_increase_mib']:>17.1f} | "
            f"{summary[e]['inner_s']:>8.2f} | {ratios[e]['peak_rss']:>9.3f} | {ratios[e]['peak_increase']:>14.3f}"
        )
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    with open(FLAGS.output, "w") as f:
        json.dump({"runs": runs, "medians": summary, "ratios_to_smallest_E": ratios}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
