"""Data pieces specific to InternVideo-Next pretraining: masks, the multi-scale schedule, clip lists."""
