"""Names and numbers fixed by the released InternVideo2.5 chat model (OpenGVLab/InternVideo2_5_Chat_8B)."""

IMG_START_TOKEN = "<img>"
IMG_END_TOKEN = "</img>"
IMG_CONTEXT_TOKEN = "<IMG_CONTEXT>"
IMAGE_PLACEHOLDER = "<image>"
VIDEO_PLACEHOLDER = "<video>"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The released remote code hard-codes these two (they are not in config.json): HiCo merges the
# tokens of every 4 consecutive frames down to 64, i.e. 16 tokens per frame.
DEFAULT_LOCAL_NUM_FRAMES = 4
DEFAULT_NUM_TOME_TOKENS = 64

# The model card samples 128 frames, one 448x448 tile each, and decodes greedily.
DEFAULT_NUM_FRAMES = 128
DEFAULT_INPUT_SIZE = 448
DEFAULT_GENERATION_CONFIG = {"do_sample": False, "max_new_tokens": 1024, "num_beams": 1}

IGNORE_INDEX = -100
