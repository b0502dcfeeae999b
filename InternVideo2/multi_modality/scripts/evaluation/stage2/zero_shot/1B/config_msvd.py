"""Zero-shot msvd retrieval with the released InternVideo2-1B stage-2 checkpoint."""

from configs.stage2_1B import *  # noqa: F403

test_file = {"msvd_ret_test": "${available_corpus.msvd_ret_test}"}
test_types = ["msvd_ret_test"]
