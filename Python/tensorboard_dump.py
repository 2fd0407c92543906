"""Prints what TensorBoard reads from a run's event file, as JSON.

    .venv/bin/python Python/tensorboard_dump.py RUN_FOLDER

Uses TensorBoard's own reader (EventAccumulator, every event kept), so the output is what
`tensorboard --logdir` shows: {"scalars": {tag: [[step, value], ...]}, "images": {tag:
[[step, width, height, bytes], ...]}}, a non-finite value as null. The tests of `r2i train`
compare it with metrics.jsonl.
"""

import json
import math
import sys

from tensorboard.backend.event_processing import event_accumulator


def dump(folder):
    acc = event_accumulator.EventAccumulator(
        folder, size_guidance={event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0}
    )
    acc.Reload()
    tags = acc.Tags()
    scalars = {
        tag: [[e.step, e.value if math.isfinite(e.value) else None] for e in acc.Scalars(tag)]
        for tag in tags[event_accumulator.SCALARS]
    }
    images = {
        tag: [[e.step, e.width, e.height, len(e.encoded_image_string)] for e in acc.Images(tag)]
        for tag in tags[event_accumulator.IMAGES]
    }
    return {"scalars": scalars, "images": images}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tensorboard_dump.py RUN_FOLDER")
    json.dump(dump(sys.argv[1]), sys.stdout)
