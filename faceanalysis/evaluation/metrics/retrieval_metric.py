"""Zero-shot image-text retrieval Recall@K on a held-out image-caption set, as an MMEngine metric.

Used as the ``val_evaluator`` of pre-training (CLIP / FaRL / ALIP), so that a ``ValLoop`` every N
iterations logs ``retrieval/mean_R`` and ``CheckpointHook(save_best='retrieval/mean_R',
rule='greater')`` keeps the best checkpoint (MMEngine cannot infer the rule from that name).

Inputs: the pre-training model's ``val_step`` (``forward(mode='predict')``) returns one dict per
sample with ``image_embedding`` and ``text_embedding`` (``(E,)`` float tensors, L2-normalised),
``caption`` (the raw caption str; optional) and ``key`` (str, for messages).

Protocol (generalising COCO's five-captions-per-image one to repeated captions; the pure functions
and the tie rule are in :mod:`faceanalysis.evaluation.functional.retrieval`):

* ``dedup_captions=True`` and every sample has a caption: the text gallery is the set of *unique*
  caption strings, each represented by the text embedding of its first occurrence (identical
  strings give the same embedding up to rounding). Image -> text: an image's one positive is its
  caption. Text -> image: each unique caption is a query and *all* images with that caption are
  its positives. Without deduplication, an image whose caption also belongs to other images
  would compete with exact copies of its own text, and a repeated caption would be scored
  against several identical queries.
* No captions, or ``dedup_captions=False``: one-to-one pairs, the i-th image and the i-th text
  (exact duplicates of a caption then tie; the stable tie rule ranks the earlier sample first).
* Similarity is the cosine: embeddings are L2-normalised again here (a no-op for a model that
  already does it), computed in float32 by chunks of ``chunk_size`` queries.

Outputs, in percent: ``i2t_R@K`` and ``t2i_R@K`` for every K of ``topk``, ``mean_R`` (mean of
those), ``num_images``, ``num_texts`` (the text gallery size), and the chance levels
``chance_i2t_R@1 = 100 / num_texts`` and ``chance_t2i_R@1`` (mean over caption queries of
``100 * positives / num_images``), so that a log reader can judge "well above chance".

Distributed evaluation: :meth:`ImageTextRetrievalMetric.process` appends exactly one entry per
sample, so MMEngine's ``collect_results`` (which orders by dataset index and drops the sampler's
padding by truncating to the dataset size) yields every sample once. Retrieval needs every
sample at once, so :meth:`compute_metrics` runs on the main process over the whole set.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from faceanalysis.registry import METRICS
from ..functional.retrieval import build_caption_groups, check_topk, embedding_retrieval_recall

__all__ = ['ImageTextRetrievalMetric', 'image_text_retrieval_metrics']


def image_text_retrieval_metrics(image_embeddings: torch.Tensor,
                                 text_embeddings: torch.Tensor,
                                 captions: Optional[Sequence[str]] = None,
                                 topk: Sequence[int] = (1, 5, 10),
                                 dedup_captions: bool = True,
                                 chunk_size: int = 1024) -> Dict[str, float]:
    """Image -> text and text -> image Recall@K of N image-caption pairs (see module docstring).

    Args:
        image_embeddings: ``(N, E)`` float, L2-normalised (cosine similarity = dot product).
        text_embeddings: ``(N, E)`` float, L2-normalised; row i is the caption of image i.
        captions: N caption strings; ``None`` (or ``dedup_captions=False``) scores one-to-one
            pairs.
        topk: the K values.
        dedup_captions: group identical caption strings (multi-positive protocol).
        chunk_size: queries per similarity block.

    Returns:
        ``i2t_R@K``, ``t2i_R@K`` (percent), ``mean_R``, ``num_images``, ``num_texts``,
        ``chance_i2t_R@1`` and ``chance_t2i_R@1`` (percent).
    """
    topk = check_topk(topk)
    if image_embeddings.dim() != 2 or image_embeddings.shape != text_embeddings.shape:
        raise ValueError(f'image embeddings {tuple(image_embeddings.shape)} and text embeddings '
                         f'{tuple(text_embeddings.shape)} must both be (N, E)')
    num_images = image_embeddings.shape[0]
    if num_images == 0:
        raise ValueError('no image-text pair to score')
    if captions is not None and len(captions) != num_images:
        raise ValueError(f'{len(captions)} captions for {num_images} image-text pairs')

    if captions is not None and dedup_captions:
        gallery_index, unique_captions = build_caption_groups(captions)
        num_texts = len(unique_captions)
        first_sample = torch.full((num_texts, ), num_images, dtype=torch.long)
        first_sample.scatter_reduce_(0, gallery_index, torch.arange(num_images), reduce='amin')
        text_gallery = text_embeddings[first_sample.to(text_embeddings.device)]
        images_of_caption: List[List[int]] = [[] for _ in range(num_texts)]
        for sample, caption in enumerate(gallery_index.tolist()):
            images_of_caption[caption].append(sample)
        i2t_positives: Any = gallery_index
        t2i_positives: Any = images_of_caption
        positives_per_text = torch.bincount(gallery_index, minlength=num_texts).double()
    else:
        num_texts = num_images
        text_gallery = text_embeddings
        i2t_positives = t2i_positives = torch.arange(num_images)
        positives_per_text = torch.ones(num_texts, dtype=torch.float64)

    i2t = embedding_retrieval_recall(image_embeddings, text_gallery, i2t_positives, topk,
                                     chunk_size)
    t2i = embedding_retrieval_recall(text_gallery, image_embeddings, t2i_positives, topk,
                                     chunk_size)
    metrics: Dict[str, float] = {}
    metrics.update({f'i2t_{name}': 100.0 * value for name, value in i2t.items()})
    metrics.update({f't2i_{name}': 100.0 * value for name, value in t2i.items()})
    metrics['mean_R'] = float(np.mean(list(metrics.values())))
    metrics['num_images'] = num_images
    metrics['num_texts'] = num_texts
    metrics['chance_i2t_R@1'] = 100.0 / num_texts
    metrics['chance_t2i_R@1'] = float(100.0 * (positives_per_text / num_images).mean())
    return metrics


def _get(sample: Any, key: str, default: Any = None) -> Any:
    """``sample[key]`` for the dicts a pre-training model returns, ``sample.key`` otherwise."""
    if isinstance(sample, Mapping):
        return sample.get(key, default)
    return getattr(sample, key, default)


def _embedding(sample: Any, field: str, key: str) -> torch.Tensor:
    """The ``(E,)`` float32 CPU copy of ``sample[field]``, with a clear error otherwise."""
    value = _get(sample, field)
    if value is None:
        raise ValueError(f'sample {key!r}: no {field!r} (ImageTextRetrievalMetric needs '
                         "'image_embedding' and 'text_embedding' from the model's predict mode)")
    value = torch.as_tensor(value).detach()
    if value.dim() == 2 and value.shape[0] == 1:
        value = value[0]
    if value.dim() != 1 or value.numel() == 0:
        raise ValueError(f'sample {key!r}: {field} must be an (E,) vector, got shape '
                         f'{tuple(value.shape)}')
    if not value.is_floating_point():
        raise ValueError(f'sample {key!r}: {field} must be floating point, got {value.dtype}')
    value = value.to('cpu', torch.float32)
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f'sample {key!r}: {field} holds NaN or inf')
    if not bool(value.abs().sum() > 0):
        raise ValueError(f'sample {key!r}: {field} is all zeros (no direction for a cosine)')
    return value.clone()


@METRICS.register_module()
class ImageTextRetrievalMetric(BaseMetric):
    """Zero-shot image <-> text Recall@K of a held-out image-caption set (module docstring).

    Args:
        topk: the K values of Recall@K.
        dedup_captions: score repeated caption strings as one text with several positive images
            (default), else one-to-one pairs.
        chunk_size: queries per similarity block (peak memory ``chunk_size x gallery`` floats).
        device: where :meth:`compute_metrics` computes the similarities (``'cpu'``, or e.g.
            ``'cuda'`` for large sets: 50k samples cost two 50k x 50k x E products).
        collect_device, prefix, collect_dir: as :class:`mmengine.evaluator.BaseMetric`; the
            default prefix is ``'retrieval'``, giving ``retrieval/i2t_R@1``, ...,
            ``retrieval/mean_R``.

    Example:
        >>> val_evaluator = dict(type='ImageTextRetrievalMetric', topk=(1, 5, 10))
        >>> default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1000,
        ...                                      save_best='retrieval/mean_R', rule='greater'))
    """

    default_prefix: Optional[str] = 'retrieval'

    def __init__(self,
                 topk: Sequence[int] = (1, 5, 10),
                 dedup_captions: bool = True,
                 chunk_size: int = 1024,
                 device: str = 'cpu',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.topk = check_topk(topk)
        if int(chunk_size) < 1:
            raise ValueError(f'chunk_size must be a positive integer, got {chunk_size}')
        self.dedup_captions = bool(dedup_captions)
        self.chunk_size = int(chunk_size)
        self.device = torch.device(device)

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Store each sample's embeddings (CPU float32), caption and key; one entry per sample."""
        for sample in data_samples:
            key = _get(sample, 'key')
            key = '<sample without key>' if key is None else str(key)
            image = _embedding(sample, 'image_embedding', key)
            text = _embedding(sample, 'text_embedding', key)
            if image.shape != text.shape:
                raise ValueError(f'sample {key!r}: image_embedding has {image.numel()} dims but '
                                 f'text_embedding has {text.numel()}; both towers must project '
                                 'to the same embedding size')
            caption = _get(sample, 'caption')
            if caption is not None and not isinstance(caption, str):
                raise ValueError(f'sample {key!r}: caption must be the raw caption str, got '
                                 f'{type(caption).__name__}')
            self.results.append(dict(key=key, image_embedding=image, text_embedding=text,
                                     caption=caption))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Recall@K over the whole gathered set (main process)."""
        if not results:
            raise ValueError('ImageTextRetrievalMetric got no sample: did the model return '
                             'embeddings in predict mode?')
        dim = results[0]['image_embedding'].numel()
        for result in results:
            for field in ('image_embedding', 'text_embedding'):
                if result[field].numel() != dim:
                    raise ValueError(f'sample {result["key"]!r}: {field} has '
                                     f'{result[field].numel()} dims but sample '
                                     f'{results[0]["key"]!r} has {dim}')
        captions = [result['caption'] for result in results]
        without = [result['key'] for result in results if result['caption'] is None]
        if len(without) == len(results):
            captions = None
        elif without:
            raise ValueError(f'{len(without)} of {len(results)} samples have no caption (first: '
                             f'{without[0]!r}); give every sample a caption or none')

        images = _normalise(torch.stack([r['image_embedding'] for r in results]))
        texts = _normalise(torch.stack([r['text_embedding'] for r in results]))
        metrics = image_text_retrieval_metrics(images.to(self.device), texts.to(self.device),
                                               captions, self.topk, self.dedup_captions,
                                               self.chunk_size)
        smallest = min(metrics['num_images'], metrics['num_texts'])
        if max(self.topk) >= smallest:
            print_log(f'ImageTextRetrievalMetric: R@{max(self.topk)} on a gallery of '
                      f'{smallest} items is (nearly) 100% by construction', logger='current',
                      level=logging.WARNING)
        first_k = self.topk[0]
        print_log(f'ImageTextRetrievalMetric: {metrics["num_images"]} images, '
                  f'{metrics["num_texts"]} texts; i2t R@{first_k} '
                  f'{metrics[f"i2t_R@{first_k}"]:.2f}, t2i R@{first_k} '
                  f'{metrics[f"t2i_R@{first_k}"]:.2f} (chance at R@1: i2t '
                  f'{metrics["chance_i2t_R@1"]:.2f}, t2i {metrics["chance_t2i_R@1"]:.2f}), '
                  f'mean_R {metrics["mean_R"]:.2f}', logger='current')
        return metrics


def _normalise(embeddings: torch.Tensor) -> torch.Tensor:
    """Row-wise L2 normalisation (rows are non-zero: checked in ``process``)."""
    return embeddings / embeddings.norm(dim=1, keepdim=True)
