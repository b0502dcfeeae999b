"""Zero-shot didemo retrieval with the released InternVideo2-1B stage-2 checkpoint."""

from configs.stage2_1B import *  # noqa: F403

test_file = {"didemo_ret_test": "${available_corpus.didemo_ret_test}"}
test_types = ["didemo_ret_test"]
