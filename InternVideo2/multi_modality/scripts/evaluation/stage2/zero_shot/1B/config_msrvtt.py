"""Zero-shot msrvtt retrieval with the released InternVideo2-1B stage-2 checkpoint."""

from configs.stage2_1B import *  # noqa: F403

test_file = {"msrvtt_1k_test": "${available_corpus.msrvtt_1k_test}"}
test_types = ["msrvtt_1k_test"]
