"""Training engines of InternVideo1 pretraining: VideoMAE, ViCLIP and UniFormerV2 glue for ``ivtools.train``."""
