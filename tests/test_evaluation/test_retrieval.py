"""Zero-shot image-text retrieval Recall@K: the pure functions and ImageTextRetrievalMetric.

Hand-made 4x4 case (queries are rows, the positive of query i is gallery item i)::

    q0  [0.9, 0.1, 0.5, 0.3]   positive 0.9, nothing higher        -> rank 0
    q1  [0.8, 0.2, 0.7, 0.6]   positive 0.2, three higher          -> rank 3
    q2  [0.1, 0.9, 0.4, 0.3]   positive 0.4, 0.9 higher            -> rank 1
    q3  [0.7, 0.9, 0.1, 0.6]   positive 0.6, 0.7 and 0.9 higher    -> rank 2

    R@1 = 1/4, R@2 = 2/4, R@3 = 3/4, R@4 = 1

Multi-positive case, orthonormal e1, e2; captions and embeddings of three samples::

    sample  caption          text   image
    0       'a red circle'   e1     e1
    1       'a blue square'  e2     e1
    2       'a red circle'   e1     0.6 e1 + 0.8 e2

    dedup: text gallery [red = e1, blue = e2]
    i2t   image 0 -> sims [1, 0]      positive red:  rank 0
          image 1 -> sims [1, 0]      positive blue: rank 1
          image 2 -> sims [0.6, 0.8]  positive red:  rank 1     R@1 = 1/3, R@2 = 1
    t2i   red  -> sims [1, 1, 0.6]    positives {0, 2}: image 0 at rank 0
          blue -> sims [0, 0, 0.8]    positive {1}: image 2 higher, image 0 ties and comes first
                                      (stable order) -> rank 2  R@1 = R@2 = 1/2, R@3 = 1
    one-to-one (dedup off): i2t ranks 0, 2, 2 and t2i ranks 0, 2, 2 -> R@1 = 1/3, R@3 = 1
"""
import math

import pytest
import torch

from faceanalysis.evaluation.functional.retrieval import (best_positive_rank,
                                                          build_caption_groups,
                                                          embedding_retrieval_recall,
                                                          positive_pairs, retrieval_recall)
from faceanalysis.evaluation.metrics.retrieval_metric import (ImageTextRetrievalMetric,
                                                              image_text_retrieval_metrics)
from faceanalysis.registry import METRICS

SIM_4x4 = torch.tensor([[0.9, 0.1, 0.5, 0.3],
                        [0.8, 0.2, 0.7, 0.6],
                        [0.1, 0.9, 0.4, 0.3],
                        [0.7, 0.9, 0.1, 0.6]])

E1, E2, E3 = torch.eye(3)
CAPTIONS = ['a red circle', 'a blue square', 'a red circle']
TEXTS = torch.stack([E1, E2, E1])
IMAGES = torch.stack([E1, E1, 0.6 * E1 + 0.8 * E2])


def brute_force_ranks(similarity, positive_sets):
    """Position of the first positive in a stable descending sort, one query at a time."""
    ranks = []
    for row, positives in zip(similarity, positive_sets):
        order = torch.sort(row, descending=True, stable=True).indices.tolist()
        ranks.append(min(order.index(p) for p in positives))
    return torch.tensor(ranks)


def brute_force_recall(ranks, topk):
    return {f'R@{k}': sum(int(r) < k for r in ranks) / len(ranks) for k in topk}


def correlated_pairs(num, dim=16, noise=1.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(num, dim, generator=generator)
    texts = images + noise * torch.randn(num, dim, generator=generator)
    return (torch.nn.functional.normalize(images, dim=1),
            torch.nn.functional.normalize(texts, dim=1))


# ------------------------------------------------------------------------------ pure functions
def test_hand_made_4x4_ranks_and_recalls():
    ranks = best_positive_rank(SIM_4x4, torch.eye(4, dtype=torch.bool))
    assert ranks.tolist() == [0, 3, 1, 2]
    recalls = retrieval_recall(SIM_4x4, torch.arange(4), topk=(1, 2, 3, 4))
    assert recalls == {'R@1': 0.25, 'R@2': 0.5, 'R@3': 0.75, 'R@4': 1.0}
    # K beyond the gallery is trivially 1; every positives form gives the same answer
    assert retrieval_recall(SIM_4x4, [0, [1], {2}, torch.tensor([3])], topk=(1, 9)) == \
        {'R@1': 0.25, 'R@9': 1.0}


def test_ties_follow_a_stable_descending_sort():
    # Integer similarities: many ties; the rule must equal torch.sort(stable=True) positions.
    generator = torch.Generator().manual_seed(1)
    similarity = torch.randint(0, 4, (50, 12), generator=generator).float()
    mask = torch.rand(50, 12, generator=generator) < 0.2
    mask[torch.arange(50), torch.randint(0, 12, (50, ), generator=generator)] = True
    expected = brute_force_ranks(similarity, [row.nonzero().reshape(-1).tolist() for row in mask])
    assert torch.equal(best_positive_rank(similarity, mask), expected)
    # a collapsed model (all equal) ranks every query's first positive at its gallery index
    flat = torch.zeros(3, 3)
    assert best_positive_rank(flat, torch.eye(3, dtype=torch.bool)).tolist() == [0, 1, 2]


def test_build_caption_groups():
    index, unique = build_caption_groups(['b', 'a', 'b', 'c', 'a ', 'a'])
    assert index.tolist() == [0, 1, 0, 2, 3, 1]
    assert unique == ['b', 'a', 'c', 'a ']          # exact strings: 'a ' is its own caption
    with pytest.raises(TypeError, match='caption 1'):
        build_caption_groups(['a', 3])


def test_multi_positive_both_directions():
    metrics = image_text_retrieval_metrics(IMAGES, TEXTS, CAPTIONS, topk=(1, 2, 3))
    expected = {'i2t_R@1': 100 / 3, 'i2t_R@2': 100.0, 'i2t_R@3': 100.0,
                't2i_R@1': 50.0, 't2i_R@2': 50.0, 't2i_R@3': 100.0}
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value), key
    assert metrics['mean_R'] == pytest.approx(sum(expected.values()) / 6)
    assert (metrics['num_images'], metrics['num_texts']) == (3, 2)
    assert metrics['chance_i2t_R@1'] == pytest.approx(50.0)
    assert metrics['chance_t2i_R@1'] == pytest.approx(100 * (2 / 3 + 1 / 3) / 2)

    # the first occurrence represents a caption: a stray embedding on a repeat is not used
    stray = torch.stack([E1, E2, E3])
    assert image_text_retrieval_metrics(IMAGES, stray, CAPTIONS, topk=(1, 2, 3)) == metrics

    # one-to-one pairs: without captions, or with dedup off
    for captions, dedup in ((None, True), (CAPTIONS, False)):
        pairs = image_text_retrieval_metrics(IMAGES, TEXTS, captions, topk=(1, 3),
                                             dedup_captions=dedup)
        assert pairs['i2t_R@1'] == pytest.approx(100 / 3)
        assert pairs['t2i_R@1'] == pytest.approx(100 / 3)
        assert pairs['i2t_R@3'] == pairs['t2i_R@3'] == 100.0
        assert pairs['num_texts'] == 3 and pairs['chance_i2t_R@1'] == pytest.approx(100 / 3)


def test_identity_pairs_match_brute_force():
    images, texts = correlated_pairs(200)
    similarity = images @ texts.t()
    topk = (1, 5, 10)
    metrics = image_text_retrieval_metrics(images, texts, None, topk=topk, chunk_size=64)
    identity = [[i] for i in range(200)]
    i2t = brute_force_recall(brute_force_ranks(similarity, identity), topk)
    t2i = brute_force_recall(brute_force_ranks(similarity.t(), identity), topk)
    for k in topk:
        assert metrics[f'i2t_R@{k}'] == pytest.approx(100 * i2t[f'R@{k}'])
        assert metrics[f't2i_R@{k}'] == pytest.approx(100 * t2i[f'R@{k}'])
    assert 0 < metrics['i2t_R@1'] < 100          # neither trivial nor hopeless: a real test
    assert metrics['chance_i2t_R@1'] == pytest.approx(0.5)


def test_repeated_captions_match_brute_force():
    images, texts = correlated_pairs(120, seed=2)
    generator = torch.Generator().manual_seed(3)
    captions = [f'caption {int(c)}' for c in torch.randint(0, 30, (120, ), generator=generator)]
    index, unique = build_caption_groups(captions)
    first = [captions.index(caption) for caption in unique]
    gallery = texts[first]
    topk = (1, 5, 10)
    metrics = image_text_retrieval_metrics(images, texts, captions, topk=topk, chunk_size=17)
    i2t = brute_force_recall(brute_force_ranks(images @ gallery.t(), index[:, None].tolist()),
                             topk)
    groups = [[i for i in range(120) if int(index[i]) == u] for u in range(len(unique))]
    t2i = brute_force_recall(brute_force_ranks(gallery @ images.t(), groups), topk)
    for k in topk:
        assert metrics[f'i2t_R@{k}'] == pytest.approx(100 * i2t[f'R@{k}'])
        assert metrics[f't2i_R@{k}'] == pytest.approx(100 * t2i[f'R@{k}'])
    assert metrics['num_texts'] == len(unique)


def test_chunked_equals_unchunked():
    images, texts = correlated_pairs(150, seed=4)
    generator = torch.Generator().manual_seed(5)
    mask = torch.rand(150, 150, generator=generator) < 0.03
    mask |= torch.eye(150, dtype=torch.bool)
    sets = [row.nonzero().reshape(-1).tolist() for row in mask]
    whole, ranks = embedding_retrieval_recall(images, texts, mask, chunk_size=1024,
                                              return_ranks=True)
    for chunk_size in (1, 7, 149, 150):
        chunked, chunk_ranks = embedding_retrieval_recall(images, texts, sets,
                                                          chunk_size=chunk_size,
                                                          return_ranks=True)
        assert chunked == whole and torch.equal(chunk_ranks, ranks)
        assert retrieval_recall(images @ texts.t(), mask, chunk_size=chunk_size) == whole


def test_positive_errors():
    with pytest.raises(ValueError, match='no positive'):
        retrieval_recall(SIM_4x4, [0, [], 2, 3])
    with pytest.raises(ValueError, match='outside a gallery of 4'):
        positive_pairs([0, 1, 2, 4], 4, 4)
    bad = SIM_4x4.clone()
    bad[2, 1] = math.nan
    with pytest.raises(ValueError, match='non-finite similarity for query 2'):
        retrieval_recall(bad, torch.arange(4), chunk_size=2)
    with pytest.raises(ValueError, match='non-finite gallery embedding for gallery item 2'):
        embedding_retrieval_recall(SIM_4x4, bad, torch.arange(4))
    with pytest.raises(ValueError, match='topk'):
        retrieval_recall(SIM_4x4, torch.arange(4), topk=(0, 1))


# ------------------------------------------------------------------------------------ metric
def samples(images, texts, captions=None, keys=None):
    out = []
    for i, (image, text) in enumerate(zip(images, texts)):
        sample = dict(image_embedding=image, text_embedding=text,
                      key=keys[i] if keys else f'sample_{i}')
        if captions is not None:
            sample['caption'] = captions[i]
        out.append(sample)
    return out


def test_metric_end_to_end():
    metric = METRICS.build(dict(type='ImageTextRetrievalMetric', topk=(1, 2, 3)))
    assert isinstance(metric, ImageTextRetrievalMetric)
    batch = samples(IMAGES, TEXTS, CAPTIONS)
    metric.process(None, batch[:2])
    metric.process(None, batch[2:] + batch[:1])     # a sampler's padding: dropped by size 3
    results = metric.evaluate(3)
    expected = image_text_retrieval_metrics(IMAGES, TEXTS, CAPTIONS, topk=(1, 2, 3))
    assert results == {f'retrieval/{key}': value for key, value in expected.items()}
    assert list(results)[:7] == ['retrieval/i2t_R@1', 'retrieval/i2t_R@2', 'retrieval/i2t_R@3',
                                 'retrieval/t2i_R@1', 'retrieval/t2i_R@2', 'retrieval/t2i_R@3',
                                 'retrieval/mean_R']
    assert metric.results == []

    # unnormalised embeddings are scored by cosine; no caption gives one-to-one pairs
    metric = ImageTextRetrievalMetric(topk=(1, 3), prefix='val')
    metric.process(None, samples(3.0 * IMAGES, 0.5 * TEXTS))
    pairs = metric.evaluate(3)
    assert pairs['val/i2t_R@1'] == pytest.approx(100 / 3) and pairs['val/num_texts'] == 3


def test_metric_input_errors():
    metric = ImageTextRetrievalMetric()
    with pytest.raises(ValueError, match="sample 'face_7'.*text_embedding"):
        metric.process(None, [dict(image_embedding=E1, key='face_7')])
    with pytest.raises(ValueError, match="sample 'face_8'.*3 dims.*2"):
        metric.process(None, [dict(image_embedding=E1, text_embedding=E1[:2], key='face_8')])
    with pytest.raises(ValueError, match="sample 'face_9'.*NaN"):
        metric.process(None, [dict(image_embedding=E1 * math.nan, text_embedding=E1,
                                   key='face_9')])
    metric.results.clear()

    metric.process(None, samples(IMAGES, TEXTS, keys=['a', 'b', 'c']))
    metric.process(None, [dict(image_embedding=torch.ones(4), text_embedding=torch.ones(4),
                               key='wide')])
    with pytest.raises(ValueError, match="sample 'wide'.*4 dims but sample 'a' has 3"):
        metric.evaluate(4)
    metric.results.clear()      # evaluate() only clears after a successful compute

    metric.process(None, samples(IMAGES, TEXTS, CAPTIONS[:2] + [None], keys=['a', 'b', 'c']))
    with pytest.raises(ValueError, match="1 of 3 samples have no caption.*'c'"):
        metric.evaluate(3)
