"""InternVideo2 single-modality training: fine-tuning/probing parts and masked pretraining/distillation.

* :mod:`.finetune` -- model creation and pretrained-weight loading for ``run_finetuning.py`` and
  ``run_linear_probing.py`` (the loop itself is :mod:`ivtools.train.classification`);
* :mod:`.pretrain` -- the masked-distillation step and losses;
* :mod:`.pretrain_pipeline` -- ``run_pretraining.py`` / ``run_distill.py``.
"""
