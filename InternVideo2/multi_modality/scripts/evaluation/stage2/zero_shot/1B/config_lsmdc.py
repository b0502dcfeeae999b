"""Zero-shot lsmdc retrieval with the released InternVideo2-1B stage-2 checkpoint."""

from configs.stage2_1B import *  # noqa: F403

test_file = {"lsmdc_ret_test_1000": "${available_corpus.lsmdc_ret_test_1000}"}
test_types = ["lsmdc_ret_test_1000"]
