# Write a synthetic face dataset in the on-disk layout of a real release.
#
#   python tools/misc/make_synthetic_data.py lapa data/synthetic/LaPa \
#       [--train 16 --val 4 --test 4 --size 128 --seed 0]
#
# Training and testing configs with a `synthetic_data` entry do this automatically on first use.
import os.path as osp
import sys

_REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _REPO_ROOT not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, _REPO_ROOT)

import faceanalysis  # noqa: E402,F401

import argparse  # noqa: E402

from faceanalysis.datasets.synthetic import SYNTHETIC_MAKERS  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Write a synthetic face dataset')
    parser.add_argument('kind', choices=sorted(SYNTHETIC_MAKERS), help='dataset layout')
    parser.add_argument('out_dir', help='output root (created)')
    parser.add_argument('--train', type=int, default=16, help='training images')
    parser.add_argument('--val', type=int, default=4, help='validation images')
    parser.add_argument('--test', type=int, default=4, help='test images')
    parser.add_argument('--size', type=int, default=128, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0, help='base random seed')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    make = SYNTHETIC_MAKERS[args.kind]
    make(args.out_dir, num_images=dict(train=args.train, val=args.val, test=args.test),
         image_size=args.size, seed=args.seed, progress=True)
    print(f'{args.kind}: wrote {args.train}/{args.val}/{args.test} train/val/test images of '
          f'{args.size}x{args.size} to {args.out_dir}')


if __name__ == '__main__':
    main()
