"""InternVideo1: VideoMAE, ViCLIP, UniFormerV2, multi-modality pretraining and downstream tasks."""
