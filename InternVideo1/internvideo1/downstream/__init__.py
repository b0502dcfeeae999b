"""InternVideo1 downstream tasks: one module per task, metrics shared in :mod:`.metrics`.

* :mod:`.action_recognition` -- fine-tune / evaluate an InternVideo1 encoder on Kinetics-style lists;
* :mod:`.retrieval` -- video-text retrieval from encoder features (R@1/5/10 both directions);
* :mod:`.video_qa` -- multiple-choice (pair scoring) and open-ended (answer-vocabulary) QA;
* :mod:`.localization` -- anchor-free temporal action localization over pre-extracted features;
* :mod:`.open_set` -- uncertainty-based open-set recognition (evidential / max-softmax).
"""
