"""Batch metrics used inside trainers' ``forward_backward``."""


def compute_accuracy(output, target, topk=(1,)):
    """Top-k accuracy in percent, one 1-element float tensor per k.

    ``output`` is [N, C] logits (or a tuple/list whose first item is); callers
    usually write ``compute_accuracy(out, y)[0].item()``.
    """
    if isinstance(output, (tuple, list)):
        output = output[0]
    batch_size = target.size(0)
    top_indices = output.topk(max(topk), dim=1, largest=True, sorted=True).indices
    hits = top_indices.eq(target.view(-1, 1))  # [N, maxk]: True where rank j is the label
    return [
        hits[:, :k].any(dim=1).float().sum(0, keepdim=True).mul_(100.0 / batch_size)
        for k in topk
    ]
