"""Recall@K of cross-modal retrieval, with any number of positives per query (pure torch).

Zero-shot image-text retrieval (CLIP; ALIP's COCO/Flickr tables, shared/docs/pretrain.md §6.6)
ranks a *gallery* of one modality for every *query* of the other by cosine similarity and reports
Recall@K: the fraction of queries with at least one positive among the K most similar gallery
items. COCO and Flickr have 5 captions per image, so an image query has several positives and a
caption query has one. Face-caption sets repeat captions verbatim (the toy corpus has many
"a red circle"), so :func:`build_caption_groups` groups samples by caption string and a caption
query then has several positive images. :func:`retrieval_recall` handles both through one
representation of the positives (a ``(Q, G)`` bool mask, one gallery index per query, or one
collection of gallery indices per query).

Conventions (the tests pin them):

* **Rank** of a query: the 0-based position of its best-placed positive in the gallery sorted by
  descending similarity with a **stable** sort, i.e. equal similarities keep gallery order (the
  lower gallery index comes first), exactly ``torch.sort(s, descending=True, stable=True)``.
  :func:`best_positive_rank` computes it without sorting: with ``m`` the highest similarity of a
  positive and ``p`` the lowest gallery index of a positive reaching ``m``,
  ``rank = #{g : s_g > m} + #{g < p : s_g == m}``. Under this rule a collapsed model (all
  similarities equal) scores about chance, neither 0 nor 100.
* Recall@K is a **fraction** in [0, 1] (``rank < K``); the metric
  (:class:`faceanalysis.evaluation.metrics.retrieval_metric.ImageTextRetrievalMetric`) reports
  percent. K larger than the gallery gives 1.0.
* **Memory**: queries are processed ``chunk_size`` rows at a time, so the peak is two
  ``(chunk_size, G)`` float blocks (similarity, per-item threshold) plus a bool one, about
  450 MB for 1024 x 50,000 in float32, never the ``(Q, G)`` matrix.
  :func:`embedding_retrieval_recall` computes the similarity by chunks from the embeddings; the
  positives are kept as ``(query, gallery)`` index pairs, so the best positive score of each
  query is a gather, not a masked pass.
* A query without any positive, a positive index outside the gallery, or a non-finite similarity
  or embedding raises ``ValueError`` (a silent skip would change the denominator).

Why new code: MMEngine has no retrieval metric, mmpretrain (which has one) is not in our stack,
and open_clip's training-time evaluation builds the full similarity matrix and assumes one-to-one
pairs; none handles repeated captions or a 50k-sample set in bounded memory.
"""
from __future__ import annotations

import math
import numbers
from typing import Dict, Iterable, List, Sequence, Tuple, Union

import torch

__all__ = [
    'Positives', 'build_caption_groups', 'best_positive_rank', 'positive_pairs',
    'retrieval_recall', 'embedding_retrieval_recall', 'recall_at_k', 'check_topk'
]

#: The positives of Q queries in a gallery of G items: a ``(Q, G)`` bool mask, a ``(Q,)`` integer
#: tensor (exactly one positive gallery index per query), or a length-Q sequence whose items are a
#: gallery index or a collection of gallery indices.
Positives = Union[torch.Tensor, Sequence[Union[int, Iterable[int]]]]


def build_caption_groups(captions: Sequence[str]) -> Tuple[torch.Tensor, List[str]]:
    """Group samples by identical caption string.

    Strings are compared exactly (no case or whitespace normalisation): the grouping stands for
    "the same text embedding", and only identical strings are guaranteed to give one.

    Args:
        captions: N caption strings, one per sample, in sample order.

    Returns:
        ``(gallery_index, unique_captions)``: ``gallery_index`` is a ``(N,)`` int64 tensor, the
        position of each sample's caption in ``unique_captions``, the U distinct strings in order
        of first occurrence (so ``unique_captions[gallery_index[i]] == captions[i]`` and sample
        ``i`` is the first occurrence of its caption iff no ``j < i`` shares its index).
    """
    positions: Dict[str, int] = {}
    gallery_index = []
    for i, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise TypeError(f'caption {i} is a {type(caption).__name__}, expected a str: '
                            f'{caption!r}')
        gallery_index.append(positions.setdefault(caption, len(positions)))
    return torch.tensor(gallery_index, dtype=torch.long), list(positions)


def positive_pairs(positives: Positives, num_queries: int,
                   num_gallery: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The positives as ``(query_ids, gallery_ids)``, two ``(P,)`` int64 tensors sorted by query.

    Accepts every form of :data:`Positives`. Raises ``ValueError`` when a query has no positive,
    an index is outside ``[0, num_gallery)``, or the number of queries does not match.
    """
    if isinstance(positives, torch.Tensor) and positives.dtype == torch.bool:
        if positives.shape != (num_queries, num_gallery):
            raise ValueError(f'positive mask of shape {tuple(positives.shape)}, expected '
                             f'({num_queries}, {num_gallery}) (queries, gallery)')
        query_ids, gallery_ids = positives.nonzero(as_tuple=True)
    elif isinstance(positives, torch.Tensor):
        if positives.is_floating_point() or positives.dim() != 1:
            raise ValueError('a positives tensor must be a (Q, G) bool mask or a (Q,) integer '
                             f'tensor, got {positives.dtype} of shape {tuple(positives.shape)}')
        if positives.numel() != num_queries:
            raise ValueError(f'{positives.numel()} positive indices for {num_queries} queries')
        query_ids = torch.arange(num_queries)
        gallery_ids = positives.long().cpu()
    else:
        if len(positives) != num_queries:
            raise ValueError(f'positives for {len(positives)} queries, expected {num_queries}')
        query_list: List[int] = []
        gallery_list: List[int] = []
        for query, indices in enumerate(positives):
            if isinstance(indices, torch.Tensor):
                indices = indices.reshape(-1).tolist()
            elif isinstance(indices, int) or not isinstance(indices, Iterable):
                indices = [indices]
            indices = sorted({int(index) for index in indices})
            query_list += [query] * len(indices)
            gallery_list += indices
        query_ids = torch.tensor(query_list, dtype=torch.long)
        gallery_ids = torch.tensor(gallery_list, dtype=torch.long)

    query_ids, gallery_ids = query_ids.cpu(), gallery_ids.cpu()
    outside = (gallery_ids < 0) | (gallery_ids >= num_gallery)
    if bool(outside.any()):
        first = int(outside.nonzero()[0])
        raise ValueError(f'query {int(query_ids[first])}: positive gallery index '
                         f'{int(gallery_ids[first])} outside a gallery of {num_gallery} items')
    counts = torch.bincount(query_ids, minlength=num_queries)
    if num_queries and bool((counts == 0).any()):
        missing = (counts == 0).nonzero().reshape(-1).tolist()
        shown = missing[:8] + (['...'] if len(missing) > 8 else [])
        raise ValueError(f'{len(missing)} queries have no positive (query ids {shown}); every '
                         'query needs at least one')
    order = torch.argsort(query_ids, stable=True)
    return query_ids[order], gallery_ids[order]


def best_positive_rank(similarity: torch.Tensor, positive_mask: torch.Tensor) -> torch.Tensor:
    """0-based rank of the best-placed positive of each query (stable descending order).

    Args:
        similarity: ``(Q, G)`` float similarities, higher is closer.
        positive_mask: ``(Q, G)`` bool, True at the positives; every row has at least one.

    Returns:
        ``(Q,)`` int64 ranks: the position of the first positive in
        ``torch.sort(similarity, dim=1, descending=True, stable=True)``.
    """
    if similarity.dim() != 2 or similarity.shape != positive_mask.shape:
        raise ValueError(f'similarity of shape {tuple(similarity.shape)} and positive mask of '
                         f'shape {tuple(positive_mask.shape)} must both be (Q, G)')
    _check_finite(similarity, 'similarity', 'query')
    query_ids, gallery_ids = positive_pairs(positive_mask.bool(), *similarity.shape)
    return _ranks(similarity, query_ids.to(similarity.device), gallery_ids.to(similarity.device))


def _ranks(similarity: torch.Tensor, query_ids: torch.Tensor,
           gallery_ids: torch.Tensor) -> torch.Tensor:
    """Ranks of the ``(C, G)`` block's queries from its positive pairs (row-local query ids).

    The positives' scores are gathered from the pairs (O(P)), so the block itself is only read
    by the few full passes of the rank formula; no ``(C, G)`` positive mask is built. The block
    must be finite (checked by the callers, on the embeddings where they are given).
    """
    num_rows, num_gallery = similarity.shape
    scores = similarity[query_ids, gallery_ids]
    best_score = torch.full((num_rows, ), torch.finfo(similarity.dtype).min,
                            dtype=similarity.dtype, device=similarity.device)
    best_score.scatter_reduce_(0, query_ids, scores, reduce='amax')
    # The lowest-index positive reaching the best score is the first positive of a stable sort.
    at_best = scores == best_score[query_ids]
    first_best = torch.full((num_rows, ), num_gallery, dtype=torch.long, device=similarity.device)
    first_best.scatter_reduce_(0, query_ids[at_best], gallery_ids[at_best], reduce='amin')
    # rank = #{g : s_g > m} + #{g < p : s_g == m} in one dense pass: before p an item counts when
    # s_g >= m, i.e. s_g > nextafter(m, -inf) (exact for finite floats), from p on when s_g > m.
    # Memory stays bounded by the block even when a collapsed model ties everywhere.
    just_below = torch.nextafter(best_score, torch.full_like(best_score, -math.inf))
    gallery_pos = torch.arange(num_gallery, device=similarity.device)
    threshold = torch.where(gallery_pos < first_best[:, None], just_below[:, None],
                            best_score[:, None])
    return (similarity > threshold).sum(1)


def recall_at_k(ranks: torch.Tensor, topk: Sequence[int]) -> Dict[str, float]:
    """``{'R@K': fraction of ranks < K}`` for every K of ``topk``, from ``(Q,)`` 0-based ranks."""
    topk = check_topk(topk)
    if ranks.numel() == 0:
        raise ValueError('no query to score')
    return {f'R@{k}': float((ranks < k).double().mean()) for k in topk}


def retrieval_recall(similarity: torch.Tensor,
                     positives: Positives,
                     topk: Sequence[int] = (1, 5, 10),
                     chunk_size: int = 1024) -> Dict[str, float]:
    """Recall@K of Q queries against a gallery of G items, from their similarity matrix.

    Args:
        similarity: ``(Q, G)`` float similarities (cosine for L2-normalised embeddings).
        positives: see :data:`Positives`; every query needs at least one.
        topk: the K values, positive integers.
        chunk_size: query rows processed at a time (bounds the ``(chunk, G)`` temporaries).

    Returns:
        ``{'R@K': fraction in [0, 1]}`` for every K, in ``topk`` order.
    """
    if similarity.dim() != 2:
        raise ValueError(f'similarity must be (Q, G), got shape {tuple(similarity.shape)}')
    _check_finite(similarity, 'similarity', 'query')
    ranks = _chunked_ranks(lambda start, stop: similarity[start:stop], similarity.shape[0],
                           similarity.shape[1], positives, chunk_size, similarity.device)
    return recall_at_k(ranks, topk)


def embedding_retrieval_recall(queries: torch.Tensor,
                               gallery: torch.Tensor,
                               positives: Positives,
                               topk: Sequence[int] = (1, 5, 10),
                               chunk_size: int = 1024,
                               return_ranks: bool = False):
    """Recall@K by dot product of query and gallery embeddings, never holding the full matrix.

    Args:
        queries: ``(Q, E)`` float embeddings (L2-normalised for cosine similarity).
        gallery: ``(G, E)`` float embeddings on the same device.
        positives, topk, chunk_size: as :func:`retrieval_recall`.
        return_ranks: also return the ``(Q,)`` int64 ranks (on the CPU).

    Returns:
        ``{'R@K': fraction}``, or ``(recalls, ranks)`` with ``return_ranks``.
    """
    if queries.dim() != 2 or gallery.dim() != 2 or queries.shape[1] != gallery.shape[1]:
        raise ValueError(f'queries {tuple(queries.shape)} and gallery {tuple(gallery.shape)} '
                         'must be (Q, E) and (G, E) with the same E')
    _check_finite(queries, 'query embedding', 'query')
    _check_finite(gallery, 'gallery embedding', 'gallery item')
    gallery_t = gallery.t()
    ranks = _chunked_ranks(lambda start, stop: queries[start:stop] @ gallery_t, queries.shape[0],
                           gallery.shape[0], positives, chunk_size, queries.device)
    recalls = recall_at_k(ranks, topk)
    return (recalls, ranks) if return_ranks else recalls


def _chunked_ranks(similarity_rows, num_queries: int, num_gallery: int, positives: Positives,
                   chunk_size: int, device: torch.device) -> torch.Tensor:
    """Ranks of all queries, ``similarity_rows(start, stop)`` giving ``(stop - start, G)``."""
    if int(chunk_size) < 1:
        raise ValueError(f'chunk_size must be a positive integer, got {chunk_size}')
    chunk_size = int(chunk_size)
    if num_gallery == 0:
        raise ValueError('empty gallery')
    query_ids, gallery_ids = positive_pairs(positives, num_queries, num_gallery)
    # Pairs are sorted by query, so each chunk's pairs are one contiguous slice.
    bounds = torch.searchsorted(query_ids, torch.arange(0, num_queries + chunk_size, chunk_size))
    ranks = []
    for chunk, start in enumerate(range(0, num_queries, chunk_size)):
        stop = min(start + chunk_size, num_queries)
        lo, hi = int(bounds[chunk]), int(bounds[chunk + 1])
        ranks.append(_ranks(similarity_rows(start, stop), (query_ids[lo:hi] - start).to(device),
                            gallery_ids[lo:hi].to(device)).cpu())
    return torch.cat(ranks) if ranks else torch.zeros(0, dtype=torch.long)


def _check_finite(values: torch.Tensor, what: str, row_name: str) -> None:
    """ValueError naming the first row of a 2-D tensor that holds NaN or inf."""
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        row = int((~finite).reshape(values.shape[0], -1).any(1).nonzero()[0])
        raise ValueError(f'non-finite {what} for {row_name} {row} (NaN or inf)')


def check_topk(topk: Sequence[int]) -> Tuple[int, ...]:
    """``topk`` as a tuple of distinct positive ints (a single int is accepted); else ValueError."""
    if isinstance(topk, numbers.Integral):
        topk = (topk, )
    values = tuple(topk)
    if not values or any(isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1
                         for k in values):
        raise ValueError(f'topk must be positive integers, got {topk!r}')
    values = tuple(int(k) for k in values)
    if len(set(values)) != len(values):
        raise ValueError(f'topk repeats a value: {topk!r}')
    return values
