"""InternVideo-Next attentive probing (frozen encoder) on action recognition."""

import sys

from internvideo_next.engine.classification import main

if __name__ == "__main__":
    main("probe", sys.argv[1:], __doc__)
