"""The ``inputs`` section every recipe shares; it reads the recipe's top-level sizes by reference.

A recipe that imports it defines ``num_frames``, ``num_frames_test``, ``batch_size``,
``batch_size_test`` and ``max_txt_l`` (and may override ``inputs`` entries on the command line).
"""

inputs = {
    "image_res": 224,
    "video_input": {
        "num_frames": "${num_frames}",
        "sample_type": "rand",
        "num_frames_test": "${num_frames_test}",
        "sample_type_test": "middle",
    },
    "max_txt_l": {"image": "${max_txt_l}", "video": "${max_txt_l}"},
    "batch_size": {"image": "${batch_size}", "video": "${batch_size}"},
    "batch_size_test": {"image": "${batch_size_test}", "video": "${batch_size_test}"},
}
