"""Chat with a video: one question (``--question``), or an interactive multi-turn session."""

import argparse

from internvideo2_5.inference import add_model_args, chat_from_args, converse


def main() -> None:
    parser = add_model_args(argparse.ArgumentParser(description=__doc__))
    parser.add_argument("--video", required=True)
    parser.add_argument("--question", default=None, help="ask once and exit; omit for an interactive session")
    parser.add_argument("--stream", action="store_true", help="print the answer as it is generated")
    args = parser.parse_args()
    questions = [args.question] if args.question else iter(lambda: input("you> ").strip(), "")
    converse(
        chat_from_args(args), args.video, questions, {"max_new_tokens": args.max_new_tokens}, args.stream
    )


if __name__ == "__main__":
    main()
