"""Zero-shot anet retrieval with the released InternVideo2-1B stage-2 checkpoint."""

from configs.stage2_1B import *  # noqa: F403

test_file = {"anet_ret_val": "${available_corpus.anet_ret_val}"}
test_types = ["anet_ret_val"]
