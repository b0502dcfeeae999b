"""InternVideo2.5: a video chat LLM on InternVL2.5 with hierarchical token compression (HiCo)."""
