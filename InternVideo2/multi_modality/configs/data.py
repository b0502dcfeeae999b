"""Named corpora (the original's ``available_corpus``), under ``$INTERNVIDEO2_DATA_PATH``.

Each corpus: ``anno_path`` (a JSON list of ``{video|image, caption}``), ``data_root`` (prefix of
the media paths), ``media_type``, and for test sets the retrieval options
(``is_paragraph_retrieval``, ``max_txt_l``). The file layout below is this project's convention;
point entries elsewhere with command-line overrides (``train_file.anno_path=...``).
"""

import os as _os

_DATA = _os.environ.get("INTERNVIDEO2_DATA_PATH", "data")


def _corpus(name, media_type="video", **extra):
    return dict(
        anno_path=f"{_DATA}/anno/{name}.json",
        data_root=f"{_DATA}/{name.split('_')[0]}",
        media_type=media_type,
        **extra,
    )


available_corpus = {
    # pretraining
    "cc3m": _corpus("cc3m_train", "image"),
    "cc12m": _corpus("cc12m_train", "image"),
    "webvid": _corpus("webvid_train"),
    "webvid_10m": _corpus("webvid10m_train"),
    "internvid_v1": _corpus("internvid_train"),
    "internvid_v2_avs": _corpus("internvid2avs_train", "audio_video"),
    # retrieval test sets
    "msrvtt_1k_test": _corpus("msrvtt_1k_test"),
    "didemo_ret_test": _corpus("didemo_ret_test", is_paragraph_retrieval=True, max_txt_l=64),
    "anet_ret_val": _corpus("anet_ret_val", is_paragraph_retrieval=True, max_txt_l=150),
    "lsmdc_ret_test_1000": _corpus("lsmdc_ret_test_1000"),
    "msvd_ret_test": _corpus("msvd_ret_test"),
    "vatex_en_ret_val": _corpus("vatex_en_ret_val"),
    # fine-tuning
    "msrvtt_1k_train": _corpus("msrvtt_1k_train"),
    "didemo_ret_train": _corpus("didemo_ret_train", is_paragraph_retrieval=True, max_txt_l=64),
}
available_corpus["pretrain_example_data_1B"] = [available_corpus["cc3m"], available_corpus["webvid"]]
available_corpus["pretrain_example_data_6B"] = [
    available_corpus["cc3m"],
    available_corpus["webvid"],
    available_corpus["internvid_v2_avs"],
]
