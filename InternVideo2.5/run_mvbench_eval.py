"""Multiple-choice video QA evaluation (MVBench format): prints accuracy per task."""

import argparse

from internvideo2_5.eval.mvbench import evaluate_mcq, format_report, load_mcq, write_results
from internvideo2_5.inference import add_model_args, chat_from_args


def main() -> None:
    parser = add_model_args(argparse.ArgumentParser(description=__doc__))
    parser.set_defaults(max_new_tokens=32)
    parser.add_argument("--questions", required=True, help="MVBench-style JSON ({task: [items]} or a list)")
    parser.add_argument("--video-root", default=None, help="folder that relative video paths start from")
    parser.add_argument("--output", default=None, help="write per-item outputs and scores here (JSON)")
    args = parser.parse_args()
    chat = chat_from_args(args)
    generation = {"max_new_tokens": args.max_new_tokens}
    scores, records = evaluate_mcq(
        load_mcq(args.questions, args.video_root),
        lambda item, text: chat.chat(item.video, text, None, generation)[0],
    )
    print(format_report(scores))
    if args.output:
        write_results(scores, records, args.output)


if __name__ == "__main__":
    main()
