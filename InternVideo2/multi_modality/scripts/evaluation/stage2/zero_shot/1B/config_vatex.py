"""Zero-shot vatex retrieval with the released InternVideo2-1B stage-2 checkpoint."""

from configs.stage2_1B import *  # noqa: F403

test_file = {"vatex_en_ret_val": "${available_corpus.vatex_en_ret_val}"}
test_types = ["vatex_en_ret_val"]
