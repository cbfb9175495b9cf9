"""Lists the scalar and image tags that TensorBoard's own reader finds in a run's events.

Usage: scripts/pytools scripts/reference/tb_tags.py LOGDIR   -> JSON {"scalars": {...}, "images": {...}}
(each tag with its number of events and the last step)
"""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "images": 0})
acc.Reload()
tags = acc.Tags()
out = {
    "scalars": {t: {"count": len(acc.Scalars(t)), "last_step": acc.Scalars(t)[-1].step,
                    "last_value": acc.Scalars(t)[-1].value} for t in tags["scalars"]},
    "images": {t: {"count": len(acc.Images(t)), "width": acc.Images(t)[-1].width,
                   "height": acc.Images(t)[-1].height} for t in tags["images"]},
}
print(json.dumps(out))
