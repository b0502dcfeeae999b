"""Fine-tune / test an InternVideo1 encoder (VideoMAE or UniFormerV2) for action recognition."""

from internvideo1.downstream.action_recognition import parse_action_recognition_args, run_action_recognition

if __name__ == "__main__":
    run_action_recognition(parse_action_recognition_args())
