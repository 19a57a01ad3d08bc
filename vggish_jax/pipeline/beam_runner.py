"""Apache Beam runner + options from the CLI's --beam-runner/--beam-workers/--beam-options.

`direct` is Beam's FnApi runner with local SDK workers, built here: recent DirectRunners first download the
Prism runner (offline it stalls). Other names are Beam's; --beam-options pass through unchanged.
"""
from __future__ import annotations

import shlex
from typing import Sequence


class BeamUnavailable(RuntimeError):
    """apache-beam is not installed (it is an optional extra)."""


def require_beam():
    try:
        import apache_beam as beam
    except ImportError as e:
        raise BeamUnavailable(f"apache-beam is not installed ({e}); install the extra: pip install "
                              f"'vggish-jax[beam]'") from e
    return beam


def make(runner: str | None = "direct", workers: int = 2, options: str | Sequence[str] | None = None):
    """(runner, PipelineOptions). runner: 'direct', a Beam runner name, or None (`--runner` from options, default
    'direct'). workers: 'direct''s SDK worker processes (0: in this process)."""
    require_beam()
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle
    from apache_beam.runners.runner import create_runner

    # '--runner=FlinkRunner --flink_master=host:8081', or a list of such flags
    flags = shlex.split(options) if isinstance(options, str) else [str(o) for o in options or ()]
    in_options = PipelineOptions(flags).view_as(StandardOptions).runner
    if runner and in_options and runner.lower() != in_options.lower():
        raise ValueError(f"--beam-runner {runner} contradicts --beam-options --runner={in_options}; give one")
    name = runner or in_options or "direct"
    if name.lower() in ("direct", "directrunner", "fnapirunner"):
        if workers < 0:
            raise ValueError(f"--beam-workers must be >= 0, got {workers}")
        flags = [f for f in flags if not f.startswith("--runner")]
        defaults = {"--direct_num_workers": max(1, workers),
                    "--direct_running_mode": "multi_processing" if workers > 0 else "in_memory",
                    "--default_sdk_harness_log_level": "WARNING"}  # workers log every bundle at INFO
        flags += [f"{k}={v}" for k, v in defaults.items() if not any(f.startswith(k) for f in flags)]
        # Beam's in-process FnApi runner whose SDK workers see the options (as the DirectRunner hands them over)
        options = PipelineOptions(flags)
        encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
        info = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
        return fn_runner.FnApiRunner(provision_info=info), options
    try:
        runner_obj = create_runner(name)
    except (ValueError, ImportError) as e:
        raise ValueError(f"--beam-runner {name}: {e}".splitlines()[0]) from e
    if not in_options:
        flags.append(f"--runner={name}")
    return runner_obj, PipelineOptions(flags)

