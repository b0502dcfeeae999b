"""InternVideo-Next fine-tuning on action recognition."""

import sys

from internvideo_next.engine.classification import main

if __name__ == "__main__":
    main("finetune", sys.argv[1:], __doc__)
