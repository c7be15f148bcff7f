"""A stand-in for the flash_attn package, for the random-weights harness only.

Live Avatar's cross-attention calls `flash_attn.flash_attn_varlen_func` and asserts that the package is present.
No binary wheel of flash-attn exists on PyPI, so the harness answers that call with PyTorch's scaled-dot-product
attention: same inputs, same output shape, same memory order of magnitude (SDPA picks a fused kernel on Hopper).
Segments of equal length are batched in one call; otherwise each segment runs alone. `window_size` other than
(-1, -1) is refused rather than ignored, so a code path that needs it cannot pass silently.
"""
import torch
import torch.nn.functional as F

__version__ = "2.99.0+sdpa-shim"


def _segments(cu):
    bounds = cu.tolist()
    return [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q=None, max_seqlen_k=None,
                           dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1),
                           deterministic=False, **_ignored):
    if tuple(window_size) != (-1, -1):
        raise NotImplementedError("sdpa shim: window_size %r is not supported" % (window_size,))
    qs, ks = _segments(cu_seqlens_q), _segments(cu_seqlens_k)
    lq = {b - a for a, b in qs}
    lk = {b - a for a, b in ks}
    if len(lq) == 1 and len(lk) == 1:
        n, tq, tk = len(qs), lq.pop(), lk.pop()
        qb = q.view(n, tq, *q.shape[1:]).transpose(1, 2)
        kb = k.view(n, tk, *k.shape[1:]).transpose(1, 2)
        vb = v.view(n, tk, *v.shape[1:]).transpose(1, 2)
        out = F.scaled_dot_product_attention(qb, kb, vb, dropout_p=dropout_p, is_causal=causal, scale=softmax_scale,
                                             enable_gqa=qb.shape[1] != kb.shape[1])
        return out.transpose(1, 2).reshape(q.shape[0], q.shape[1], v.shape[-1])
    parts = []
    for (qa, qb_), (ka, kb_) in zip(qs, ks):
        o = F.scaled_dot_product_attention(q[qa:qb_].transpose(0, 1)[None], k[ka:kb_].transpose(0, 1)[None],
                                           v[ka:kb_].transpose(0, 1)[None], dropout_p=dropout_p, is_causal=causal,
                                           scale=softmax_scale)
        parts.append(o[0].transpose(0, 1))
    return torch.cat(parts)


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1), **_ignored):
    if tuple(window_size) != (-1, -1):
        raise NotImplementedError("sdpa shim: window_size %r is not supported" % (window_size,))
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                         dropout_p=dropout_p, is_causal=causal, scale=softmax_scale)
    return out.transpose(1, 2)
