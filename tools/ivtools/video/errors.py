"""The one exception type every video backend raises for unusable input."""


class VideoReadError(RuntimeError):
    """A video could not be read: missing, empty, corrupt, truncated, or not a video.

    ``path`` names the file (or frame folder) at fault and ``reason`` says what went wrong, so a
    dataset can log the file, skip the sample and count it.
    """

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read video {self.path!r}: {reason}")

    def __reduce__(self):  # keep path/reason when raised inside a DataLoader worker
        return type(self), (self.path, self.reason)
