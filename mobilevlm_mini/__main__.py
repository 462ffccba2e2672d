"""Command line: `python -m mobilevlm_mini COMMAND --help` (or the `mobilevlm-mini` script)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print one line per requirement; exit 1 if any fails."""
    from mobilevlm_mini.doctor import report, run_checks

    checks = run_checks(compute_seconds=args.seconds)
    print(report(checks))
    return 0 if all(check.ok for check in checks) else 1


def cmd_data(args: argparse.Namespace) -> int:
    """Draw a shapes-world data set and save it with `save_to_disk`."""
    import time

    from mobilevlm_mini.data import WorldConfig, generate_dataset

    start = time.perf_counter()
    try:
        dataset = generate_dataset(args.n, args.seed, WorldConfig(image_size=args.size), progress=True)
        dataset.save_to_disk(args.out)
    except (ValueError, OSError) as error:
        return _fail(error)
    print(f"saved {len(dataset)} examples to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


def _fail(error: Exception) -> int:
    """Print an expected mistake as one line on stderr (no traceback) and return the exit status 2."""
    print("error: " + "; ".join(line.strip() for line in str(error).splitlines() if line.strip()), file=sys.stderr)
    return 2


def _print_scores(result: dict) -> None:
    """A table of exact match per question type, then overall, each with its number of questions N."""
    print(f"  {'question type':<14} {'exact match':>11} {'N':>6}")
    for kind, score in result["per_type"].items():
        print(f"  {kind:<14} {score['exact_match']:>10.1%} {score['n']:>6}")
    print(f"  {'all':<14} {result['exact_match']:>10.1%} {result['n']:>6}")


def cmd_train(args: argparse.Namespace) -> int:
    """Train the tiny MobileVLM (both stages) into a checkpoint folder, then report test exact match."""
    import json
    import time

    from mobilevlm_mini import distributed
    from mobilevlm_mini.cache import register_trained
    from mobilevlm_mini.config import vlm_preset
    from mobilevlm_mini.devices import resolve_device
    from mobilevlm_mini.train import exact_match, predict, prepare_split, stage_plan, total_steps, train

    start = time.perf_counter()
    overrides = {key: value for key, value in (("projector", args.projector), ("seed", args.seed),
                                               ("layout", args.layout)) if value is not None}
    if args.augment:
        overrides["augment"] = True
    try:
        device = resolve_device(args.device)
        config = vlm_preset(args.preset, **overrides)
        distributed.setup(device)  # started by torchrun as one of several processes: join them
        rank, world_size = distributed.world()
        plan = stage_plan(config)
        if rank == 0:
            stages = " + ".join(f"{name} {stage.steps} steps" for name, stage, _ in plan)
            print(f"preset {args.preset}: {config.model.projector} projector, {config.n_train} training images, "
                  f"{stages}, seed {config.seed}; {world_size} process(es) on {device}")
        model, history = train(config, out=args.out, resume=args.resume, device=device)
        distributed.teardown()
        if rank != 0:
            return 0  # the main process evaluates and writes
        # a run on one CPU process is the lessons' model: they read it from the cache instead of training it again
        cached = register_trained(args.out, args.preset) if (world_size, device.type) == (1, "cpu") else None
    except (ValueError, OSError) as error:
        return _fail(error)
    if cached is not None:
        print(f"cached as {cached.name}: lessons 07-12 and `bench` will use it")
    test = prepare_split(model, "test", config.n_test, config.encoder_quick, config.layout)
    result = {"split": "test", "images": len(test), **exact_match(predict(model, test, progress=True)),
              "world_size": world_size, "device": device.type, "steps": total_steps(config),
              "train_seconds": round(history["seconds"], 1)}
    print(f"saved {args.out}; test split, {len(test)} images:")
    _print_scores(result)
    (Path(args.out) / "metrics.json").write_text(json.dumps(result, indent=2))
    print(f"training {history['seconds']:.0f} s; wall time of this command {time.perf_counter() - start:.0f} s")
    return 0


def cmd_warm(args: argparse.Namespace) -> int:
    """Build every cached piece the lessons read (data, encoders, the trained VLM); report what was built."""
    from mobilevlm_mini.cache import warm

    warm()
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Exact match of a trained model on a split, overall and per question type; optionally written as JSON."""
    import json

    from mobilevlm_mini.devices import resolve_device
    from mobilevlm_mini.train import exact_match, load_trained, predict, prepare_split

    try:
        model, config = load_trained(args.ckpt, resolve_device(args.device))
        data = prepare_split(model, args.split, args.n or config.n_test, config.encoder_quick, config.layout)
    except (ValueError, OSError) as error:
        return _fail(error)
    result = {"checkpoint": str(args.ckpt), "split": args.split, "images": len(data),
              **exact_match(predict(model, data, progress=True))}
    print(f"{args.ckpt} on the {args.split} split, {len(data)} images:")
    _print_scores(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    """Answer a question about any PNG or JPEG with a trained model."""
    import torch
    from PIL import Image, UnidentifiedImageError

    from mobilevlm_mini.chat import check_question
    from mobilevlm_mini.devices import resolve_device
    from mobilevlm_mini.photos import load_image
    from mobilevlm_mini.train import load_trained

    try:
        device = resolve_device(args.device)
        model, config = load_trained(args.ckpt, device)
        check_question(args.question, model.tokenizer)
        size = config.model.vit.image_size
        image = load_image(args.image, size)  # (3, size, size) RGB in [0, 1]
        with Image.open(args.image) as original:
            width, height, mode = original.width, original.height, original.mode
    except UnidentifiedImageError:
        return _fail(ValueError(f"{args.image} is not an image this program can read; give a PNG or JPEG file"))
    except (ValueError, OSError) as error:
        return _fail(error)
    generator = torch.Generator().manual_seed(args.seed)
    answer = model.answer(model.encode_images(image[None].to(device)), [args.question], temperature=args.temperature,
                          generator=generator)[0]
    print(f"read {args.image}: {width}x{height} {mode}, converted to RGB, centre-cropped and resized to "
          f"{size}x{size} (the model's input size)")
    print(f"Q: {args.question}")
    print(f"A: {answer}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Time vision encoder, projector, prefill and decode per precision and thread count; energy per answer; JSON."""
    import json

    from mobilevlm_mini.bench import BenchConfig, format_report, run_bench
    from mobilevlm_mini.cache import trained_vlm
    from mobilevlm_mini.devices import resolve_device
    from mobilevlm_mini.language import preset
    from mobilevlm_mini.realwidth import RealWidthConfig, format_real_width, run_real_width
    from mobilevlm_mini.train import load_trained

    try:
        if resolve_device(args.device).type != "cpu":
            raise ValueError(f"bench measures the CPU (threads, int8/int4 CPU kernels, energy); "
                             f"run it with --device cpu, not {args.device}")
        if args.real_width:
            precisions = {"precisions": tuple(args.precisions)} if args.precisions else {}
            config = RealWidthConfig(llm=preset(args.width), layers=args.layers, threads=max(args.threads),
                                     warmup=args.warmup, repeats=args.repeats, new_tokens=args.new_tokens,
                                     **precisions)
            report = run_real_width(config, progress=True)
        else:
            config = BenchConfig(precisions=tuple(args.precisions or BenchConfig.precisions),
                                 threads=tuple(args.threads), warmup=args.warmup, repeats=args.repeats,
                                 new_tokens=args.new_tokens, codecarbon=not args.no_codecarbon)
            model = load_trained(args.ckpt)[0] if args.ckpt else trained_vlm(args.preset)
            report = run_bench(model, config, progress=True)
            report["checkpoint"] = str(args.ckpt) if args.ckpt else f"cached preset {args.preset}"
    except (ValueError, OSError) as error:
        return _fail(error)
    print(format_real_width(report) if args.real_width else format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


def _device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help="cpu (default), cuda, mps or auto (the fastest this machine has); "
                                         "default: $MOBILEVLM_MINI_DEVICE or cpu")


def _add_train(commands: argparse._SubParsersAction) -> None:
    """The `train` command's options."""
    train = commands.add_parser("train",
                                help="train the tiny MobileVLM (stage 1 align, stage 2 instruct) "
                                     "and report test accuracy",
                                description="Train the tiny MobileVLM from nothing (data and encoder included when not "
                                            "cached), save a checkpoint folder, then report exact match on the test "
                                            "split.")
    train.add_argument("--preset", default="tiny",
                       help="training recipe: tiny (default, lesson 07) or quick (a few steps, for CI)")
    train.add_argument("--out", required=True,
                       help="checkpoint folder to write (model.safetensors, config.json, trainer_state.pt)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run saved in --out (same preset and options)")
    train.add_argument("--projector",
                       help="projector instead of the preset's ldp: mlp, ldp, ldpv2, pool, pixel_shuffle or resampler")
    train.add_argument("--seed", type=int, help="random seed instead of the preset's (default 0)")
    train.add_argument("--layout", help="where objects sit in every picture: aligned (default: inside the 2x2 patches "
                                        "one LDP token merges) or straddle (across them; lesson 08)")
    train.add_argument("--augment", action="store_true",
                       help="draw the training pictures (the encoder's too) varied as other programs draw them "
                            "(data.Augment; lesson 07, section 12); validation and test stay plain")
    _device_option(train)
    train.set_defaults(func=cmd_train)


def _add_bench(commands: argparse._SubParsersAction) -> None:
    """The `bench` command's options."""
    bench = commands.add_parser("bench", help="time and meter a trained model per precision and thread count",
                                description="Time the vision encoder, projector, prefill and decode (median and spread "
                                            "over repeats) for fp32, int8 and int4 at each thread count, with peak "
                                            "memory and energy per answer (RAPL where readable, else a labelled "
                                            "estimate; codecarbon's figure beside it).")
    bench.add_argument("--ckpt", help="checkpoint folder written by `train` "
                                      "(default: the cached model of --preset, trained first if missing)")
    bench.add_argument("--preset", default="tiny",
                       help="preset of the cached model when --ckpt is not given (default tiny)")
    bench.add_argument("--json", help="also write every figure to this JSON file")
    bench.add_argument("--precisions", nargs="+",
                       help="any of fp32 int8 int4 (by hand) int8-fused int4-fused (PyTorch's weight-only "
                            "kernels) int8-dynamic (int8 activations too); default fp32 int8 int4, or all six "
                            "with --real-width")
    bench.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="thread counts to try (default 1 2)")
    bench.add_argument("--repeats", type=int, default=7, help="timed repeats of each stage (default 7)")
    bench.add_argument("--warmup", type=int, default=2, help="untimed warm-up runs before them (default 2)")
    bench.add_argument("--new-tokens", type=int, default=16, help="tokens per timed decode run (default 16)")
    bench.add_argument("--no-codecarbon", action="store_true",
                       help="skip the codecarbon cross-check (saves a few seconds)")
    bench.add_argument("--real-width", action="store_true",
                       help="instead of a trained model: decode with MobileLLaMA-sized layers and random weights "
                            "at each precision; bytes per token, bandwidth roofline, logits vs fp32 (lesson 10)")
    bench.add_argument("--layers", type=int, default=4,
                       help="with --real-width: decoder layers built (default 4, 1.3 GB in fp32); times are also "
                            "scaled to the real 24")
    bench.add_argument("--width", default="mobilellama-1.4b",
                       help="with --real-width: the LLM preset whose widths are built (default mobilellama-1.4b)")
    _device_option(bench)
    bench.set_defaults(func=cmd_bench)


def build_parser() -> argparse.ArgumentParser:
    """The parser with one sub-command per task."""
    parser = argparse.ArgumentParser(prog="python -m mobilevlm_mini",
                                     description="mobilevlm-mini: a tiny MobileVLM on your CPU.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    doctor = commands.add_parser("doctor", help="check that this machine is ready for the course")
    doctor.add_argument("--seconds", type=float, default=5.0, help="length of the compute benchmark (default 5)")
    doctor.set_defaults(func=cmd_doctor)
    data = commands.add_parser("data", help="draw a shapes-world data set and save it to a folder")
    data.add_argument("--out", required=True, help="folder to write (datasets.save_to_disk format)")
    data.add_argument("--n", type=int, default=20000, help="number of images (default 20000)")
    data.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    data.add_argument("--size", type=int, default=48,
                      help="image side in pixels (default 48, the size every lesson uses)")
    data.set_defaults(func=cmd_data)
    _add_train(commands)
    warm = commands.add_parser("warm",
                               help="build every cached piece the lessons use (data, encoders, trained VLM), once")
    warm.set_defaults(func=cmd_warm)
    evaluate = commands.add_parser("eval", help="exact match of a trained model on a split, per question type",
                                   description="Ask every question of a split's images (one at a time, greedy) "
                                               "and score exact match.")
    evaluate.add_argument("--ckpt", required=True, help="checkpoint folder written by `train`")
    evaluate.add_argument("--split", choices=["train", "validation", "test", "drawn"], default="test",
                          help="which split (default test; drawn: shapes-world scenes drawn as by hand, drawn.py)")
    evaluate.add_argument("--n", type=int, help="number of images (default: the checkpoint's n_test)")
    evaluate.add_argument("--json", help="also write the scores to this JSON file")
    _device_option(evaluate)
    evaluate.set_defaults(func=cmd_eval)
    ask = commands.add_parser("ask", help="ask a trained model a question about an image",
                              description="Answer one question about any PNG or JPEG "
                                          "(converted to RGB, centre-cropped, resized).")
    ask.add_argument("--ckpt", required=True, help="checkpoint folder written by `train`")
    ask.add_argument("--image", required=True, help="a PNG or JPEG file")
    ask.add_argument("--question", required=True,
                     help='e.g. "what colour is the circle?" (the shapes world\'s words only)')
    ask.add_argument("--temperature", type=float, default=0.0, help="0 (default) answers greedily; > 0 samples")
    ask.add_argument("--seed", type=int, default=0, help="seed for sampling (default 0)")
    _device_option(ask)
    ask.set_defaults(func=cmd_ask)
    _add_bench(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run the chosen command."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
