"""Reads run folders with TensorBoard's own reader (EventAccumulator, purging orphaned data as
TensorBoard does) and prints, as JSON, each folder's scalars and text summaries:
{folder: {"scalars": {tag: [[step, value], ...]}, "texts": {tag: [[step, text], ...]}}}.
Used by tests/tensorboard.rs; run with the test-only environment's Python (make test-deps)."""

import json
import sys

from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.util import tensor_util


def read(folder):
    acc = ea.EventAccumulator(folder, size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    tags = acc.Tags()
    scalars = {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]}
    texts = {}
    for t in tags["tensors"]:
        texts[t] = [
            [e.step, tensor_util.make_ndarray(e.tensor_proto).item().decode("utf-8")]
            for e in acc.Tensors(t)
        ]
    return {"scalars": scalars, "texts": texts}


if __name__ == "__main__":
    json.dump({folder: read(folder) for folder in sys.argv[1:]}, sys.stdout)
