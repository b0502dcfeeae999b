"""InternVid tooling: manifests, clip extraction, filtering, captioning hooks, shards, and instruction data."""
