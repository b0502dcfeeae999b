#!/usr/bin/env bash
# Distil InternVideo2-1B (stage 2) into L14: see dist_1B_stage2.sh.
exec bash "$(dirname "$0")/dist_1B_stage2.sh" L14
