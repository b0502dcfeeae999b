"""Answer every ``{"video", "question"}`` line of a JSONL file; write one JSONL line per input."""

import argparse

from internvideo2_5.inference import add_model_args, chat_from_args, read_jsonl, run_batch


def main() -> None:
    parser = add_model_args(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("--input", required=True, help="JSONL with video and question per line")
    parser.add_argument("--output", required=True, help="JSONL written with an answer (or error) per line")
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    counts = run_batch(
        chat_from_args(args),
        read_jsonl(args.input),
        args.output,
        args.batch_size,
        {"max_new_tokens": args.max_new_tokens},
    )
    print(f"answered {counts['answered']}, failed {counts['failed']} -> {args.output}")


if __name__ == "__main__":
    main()
