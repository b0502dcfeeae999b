"""One rank of the ``--loss_reduction_all_gather`` test (run by ``ivtools.launch --gpus 2`` on gloo).

``packed_loss_ranks.py CHECKPOINT SAMPLES OUT``: the tiny model in float64 takes one packed row
per rank, made of that rank's samples (SAMPLES: a torch-saved list of per-rank lists), and for every
loss reduction, with and without the flag, computes ``sft_step``'s loss and the gradients averaged
over the ranks as DDP averages them. Rank 0 writes ``{"<reduction>/<flag>": {"losses": [per rank],
"grads": {name: tensor}}}`` to OUT.
"""

import sys
from types import SimpleNamespace

import torch

from internvideo2_5.data.packing import PackedCollator
from internvideo2_5.engine.finetune import sft_step
from internvideo2_5.models.loading import load_pretrained
from internvideo2_5.models.packed import LOSS_REDUCTIONS
from ivtools.distributed import all_gather_object, all_reduce_mean, init_distributed


def averaged_gradients(model, batch, reduction: str, all_gather: bool) -> tuple[float, dict]:
    model.zero_grad(set_to_none=True)
    # what sft_step uses of a training backend: the bare model, and inputs left where they are
    backend = SimpleNamespace(module=model, prepare=lambda tensor: tensor)
    loss, _ = sft_step(model, batch, backend, reduction, loss_reduction_all_gather=all_gather)
    loss.backward()
    grads = {n: all_reduce_mean(p.grad) for n, p in model.named_parameters() if p.grad is not None}
    return loss.item(), grads


def main(checkpoint: str, samples_path: str, out: str) -> None:
    dist = init_distributed("cpu")
    model, tokenizer, _ = load_pretrained(checkpoint, dtype=torch.float64)
    mine = torch.load(samples_path, weights_only=True)[dist.rank]
    batch = PackedCollator(tokenizer.pad_token_id)([{"samples": mine, "skipped": 0}])
    results = {}
    for reduction in LOSS_REDUCTIONS:
        for all_gather in (False, True):
            loss, grads = averaged_gradients(model, batch, reduction, all_gather)
            results[f"{reduction}/{all_gather}"] = {"losses": all_gather_object(loss), "grads": grads}
    if dist.is_main:
        torch.save(results, out)


if __name__ == "__main__":
    main(*sys.argv[1:])
