# Merge CelebAMask-HQ's part masks into one label PNG per image, in FaRL's overwrite order.
#
#   python tools/dataset_converters/celebamaskhq.py data/CelebAMask-HQ [--out DIR] [--nproc N]
#
# Writes DIR/<id>.png (uint8, values 0..18, the masks' 512x512 size) for every image of
# CelebA-HQ-to-CelebA-mapping.txt, and nothing else. The default DIR,
# ROOT/CelebAMask-HQ-label-farl, is picked up by CelebAMaskHQDataset on its own; another folder is
# passed as `label_dir`. The labels are exactly those the dataset builds on the fly
# (faceanalysis.datasets.celebamaskhq.build_celebamaskhq_label); caching them saves reading 18
# part masks per sample. Images are not touched: the pipeline resizes them (DS_DATA.md).
import os.path as osp
import sys

_REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _REPO_ROOT not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, _REPO_ROOT)

import argparse  # noqa: E402
import os  # noqa: E402
from multiprocessing import Pool  # noqa: E402
from typing import List, Optional, Sequence, Tuple  # noqa: E402

import cv2  # noqa: E402
from PIL import Image  # noqa: E402

from faceanalysis.datasets.celebamaskhq import (  # noqa: E402
    CELEBAMASKHQ_LABEL_DIR, CELEBAMASKHQ_PARTS, IMAGE_DIR, MASK_DIR, build_celebamaskhq_label,
    read_celebamaskhq_mapping)

LABEL_SCALE = 0.5  # the release's 512 masks of 1024 images


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Cache CelebAMask-HQ labels merged in FaRL\'s order (19 classes)')
    parser.add_argument('root', help='CelebAMask-HQ root (CelebA-HQ-img/, '
                        'CelebAMask-HQ-mask-anno/, CelebA-HQ-to-CelebA-mapping.txt)')
    parser.add_argument('--out', default=None,
                        help=f'output folder (default: ROOT/{CELEBAMASKHQ_LABEL_DIR}, which the '
                        'dataset uses on its own)')
    parser.add_argument('--nproc', type=int, default=min(8, os.cpu_count() or 1),
                        help='worker processes (default: min(8, CPUs))')
    return parser.parse_args(argv)


def convert_one(job: Tuple[str, int, str]) -> int:
    """Merge and write the label of one image; return its id."""
    root, hq_id, out_dir = job
    image_path = osp.join(root, IMAGE_DIR, f'{hq_id}.jpg')
    try:
        with Image.open(image_path) as image:  # reads the header only
            width, height = image.size
    except FileNotFoundError:
        raise FileNotFoundError(f'image {image_path} (listed in the mapping) does not exist') \
            from None
    except Exception as err:
        raise ValueError(f'image {image_path} cannot be read ({err})') from err
    shape = (int(round(height * LABEL_SCALE)), int(round(width * LABEL_SCALE)))
    label = build_celebamaskhq_label(osp.join(root, MASK_DIR), hq_id, CELEBAMASKHQ_PARTS, shape)
    ok, data = cv2.imencode('.png', label)
    if not ok:
        raise OSError(f'could not encode the label of image {hq_id}')
    path = osp.join(out_dir, f'{hq_id}.png')
    tmp = osp.join(out_dir, f'.{hq_id}.png.tmp')
    with open(tmp, 'wb') as f:  # no half-written PNG if interrupted
        f.write(data.tobytes())
    os.replace(tmp, path)
    return hq_id


def convert(root: str, out_dir: Optional[str] = None, nproc: int = 1,
            progress: bool = True) -> List[int]:
    """Write ``out_dir/<id>.png`` for every image of the mapping; return the ids written."""
    if not osp.isdir(osp.join(root, MASK_DIR)):
        raise FileNotFoundError(f'{osp.join(root, MASK_DIR)} does not exist; see DS_DATA.md')
    ids = sorted(read_celebamaskhq_mapping(root).values())
    out_dir = out_dir or osp.join(root, CELEBAMASKHQ_LABEL_DIR)
    os.makedirs(out_dir, exist_ok=True)
    jobs = [(root, hq_id, out_dir) for hq_id in ids]
    from tqdm import tqdm
    bar = tqdm(total=len(jobs), desc=f'CelebAMask-HQ labels -> {out_dir}', unit='img',
               disable=not progress)
    done = []
    if nproc <= 1:
        for job in jobs:
            done.append(convert_one(job))
            bar.update(1)
    else:
        with Pool(nproc) as pool:
            for hq_id in pool.imap_unordered(convert_one, jobs, chunksize=16):
                done.append(hq_id)
                bar.update(1)
    bar.close()
    return sorted(done)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    out_dir = args.out or osp.join(args.root, CELEBAMASKHQ_LABEL_DIR)
    done = convert(args.root, out_dir, args.nproc)
    default = osp.abspath(out_dir) == osp.abspath(osp.join(args.root, CELEBAMASKHQ_LABEL_DIR))
    use = ('CelebAMaskHQDataset uses it on its own' if default else
           f'pass label_dir={osp.abspath(out_dir)!r} to CelebAMaskHQDataset')
    print(f'wrote {len(done)} labels to {out_dir}; {use}')


if __name__ == '__main__':
    main()
