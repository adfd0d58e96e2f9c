"""`habc-evaluate`: N held-out trials of a checkpoint on the simulated rig.

    habc-evaluate ckpt/habc/round_003                       # 50 trials, state observations
    habc-evaluate ckpt/sft/round_000 --trials 100 --obs pixels --json out/sft.json --md out/sft.md

Success rate with its Wilson 95 % interval and the mean ± std trajectory length (action frames)
over successful trials (spec §8). Trials run collect's own episode loop (`--eval`: no operator
takeover) on seeds of the held-out range, which no demo or rollout ever uses.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from habc_benchmark.evaluation import EvalConfig, EvalResult, evaluate_policy, load_sim
from habc_benchmark.seeds import EVAL_BASE
from habc_control.collect import CollectConfig, check_checkpoint, check_policy_spec
from habc_control.command_mux import ActionLayout
from habc_core.cli import ArgumentParser, UserError, non_negative_int, positive_int, user_errors
from habc_core.features import CAMERA_NAMES

PROG = "habc-evaluate"


def fmt_pct(x: float) -> str:
    return f"{100.0 * x:.1f} %"


def fmt_length(mean: float | None, std: float | None) -> str:
    return "n/a (no success)" if mean is None else f"{mean:.1f} ± {std:.1f}"


def markdown(result: EvalResult) -> str:
    s = result.summary
    first = result.trials[0].seed if result.trials else EVAL_BASE
    return "\n".join(
        [
            f"# Evaluation of `{result.policy}`",
            "",
            f"{s.n} trials on held-out seeds {first}..{first + s.n - 1}, {result.obs_mode} "
            f"observations, actor model index {result.model_index}.",
            "",
            "| success | Wilson 95 % | successes | length over successes (frames) |",
            "| --- | --- | --- | --- |",
            f"| {fmt_pct(s.rate)} | [{fmt_pct(s.ci_low)}, {fmt_pct(s.ci_high)}] "
            f"| {s.successes}/{s.n} | {fmt_length(s.len_mean, s.len_std)} |",
            "",
            f"Wall time {result.wall_s:.1f} s ({result.ticks_per_s:.0f} ticks/s).",
            "",
        ]
    )


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("policy", help="checkpoint directory (or any `habc-collect --policy` spec)")
    p.add_argument("--trials", type=positive_int, default=50, help="number of trials (default 50)")
    p.add_argument(
        "--seed",
        type=non_negative_int,
        default=EVAL_BASE,
        help=f"first held-out episode seed (default {EVAL_BASE})",
    )
    p.add_argument("--obs", choices=("state", "pixels"), default="state")
    p.add_argument("--config", default=None, help="sim YAML (default: config/sim.yaml)")
    p.add_argument("--json", type=Path, default=None, help="write the full result here")
    p.add_argument("--md", type=Path, default=None, help="write a Markdown summary here")
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--quiet", action="store_true", help="no per-trial progress")
    return p.parse_args(argv)


def check_inputs(args: argparse.Namespace) -> EvalConfig:
    """Everything the trials need, checked before the first one: the seeds, the output paths,
    the sim config and the policy (a checkpoint whose chunks the collector cannot run is
    refused here, not mid-trial)."""
    cfg = EvalConfig(
        trials=args.trials,
        first_seed=args.seed,
        obs_mode=args.obs,
        sim_config=args.config,
        torch_threads=args.threads,
    )
    if args.json is not None and args.md is not None and args.json.resolve() == args.md.resolve():
        raise UserError(f"--json, --md: both {args.json}; the Markdown would overwrite the JSON")
    for flag, path in (("--json", args.json), ("--md", args.md)):
        if path is not None and path.is_dir():
            raise UserError(f"{flag}: {path} is a directory; give a file path")
    if args.config is not None and not Path(args.config).is_file():
        raise UserError(f"--config: no such file {args.config}")
    check_policy_spec(args.policy, "policy")
    sim = load_sim(args.config)
    check_checkpoint(
        args.policy,
        execute_steps=CollectConfig().execute_steps,  # what evaluate_policy's trials run
        source="the evaluation's collector",
        name="policy",
        action_dim=ActionLayout(("left", "right"), sim.env.action_space).dim,
        cameras=CAMERA_NAMES if args.obs == "pixels" else (),
    )
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    with user_errors(PROG):
        args = _parse(argv)
        cfg = check_inputs(args)
    done = [0, 0]

    def progress(trial) -> None:
        done[0] += 1
        done[1] += int(trial.success)
        if not args.quiet:
            print(
                f"trial {done[0]}/{cfg.trials} seed {trial.seed}: "
                f"{'success' if trial.success else 'failure'} in {trial.length} frames "
                f"({done[1]}/{done[0]} so far)",
                file=sys.stderr,
            )

    # Inputs were checked above: an error from here on is the work's, with its traceback.
    result = evaluate_policy(args.policy, cfg, progress)
    text = markdown(result)
    print(text)
    if args.json is not None:
        result.write_json(args.json)
    if args.md is not None:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(text, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
