# Parse one face and write an overlay PNG (image | [ground truth |] prediction).
#
#   python demo/face_parsing_demo.py IMAGE CONFIG CHECKPOINT \
#       (--landmarks x1,y1,x2,y2,x3,y3,x4,y4,x5,y5 | --box x1,y1,x2,y2) [--out overlay.png]
#       [--gt LABEL.png] [--label-out label.png] [--device cpu] [--flip-test]
#
# --landmarks: 5 points in pixels, in the order left eye, right eye, nose tip, left mouth corner,
# right mouth corner ("left" = image left; RetinaFace / MTCNN order). --box: a face box; the crop
# around it approximates FaRL's alignment (faceanalysis.apis.face_parser.box_to_matrix). Without
# either, CelebAMask-HQ configs parse the whole image. The label map is in the image's pixels.
import os.path as osp
import sys

_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, _REPO_ROOT)

import faceanalysis  # noqa: E402,F401  (compat shims first)

import argparse  # noqa: E402
import os  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def _numbers(text: str, count: int, what: str) -> np.ndarray:
    try:
        values = [float(v) for v in text.replace(' ', ',').split(',') if v]
    except ValueError:
        raise SystemExit(f'{what}: expected {count} comma-separated numbers, got {text!r}')
    if len(values) != count:
        raise SystemExit(f'{what}: expected {count} numbers, got {len(values)} ({text!r})')
    return np.asarray(values)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Face parsing demo: writes an overlay PNG')
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='parsing config (configs/parsing/*.py)')
    parser.add_argument('checkpoint', help='trained checkpoint (tools/train.py output)')
    where = parser.add_mutually_exclusive_group()
    where.add_argument('--landmarks', help='5 points x1,y1,...,x5,y5: left eye, right eye, nose, '
                       'left mouth corner, right mouth corner')
    where.add_argument('--box', help='face box x1,y1,x2,y2')
    parser.add_argument('--out', default='overlay.png', help='overlay PNG to write')
    parser.add_argument('--label-out', help='also write the label map (uint8 PNG) here')
    parser.add_argument('--gt', help='ground-truth label PNG, drawn between image and prediction')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--flip-test', action='store_true',
                        help='average with the mirrored image (left/right classes swapped)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from faceanalysis.apis import FaceParser
    from faceanalysis.visualization import draw_parsing_overlay

    options = {'model.flip_test': True} if args.flip_test else None
    parser = FaceParser(args.config, args.checkpoint, device=args.device, cfg_options=options)
    landmarks = _numbers(args.landmarks, 10, '--landmarks').reshape(5, 2) \
        if args.landmarks else None
    box = _numbers(args.box, 4, '--box') if args.box else None
    image = parser.read_image(args.image)
    label = parser.parse(image, landmarks5=landmarks, box=box)

    gt = None
    if args.gt:
        gt = cv2.imread(args.gt, cv2.IMREAD_UNCHANGED)
        if gt is None:
            raise SystemExit(f'cannot read --gt {args.gt}')
        if gt.ndim == 3:
            gt = gt[..., 0]
    panel = draw_parsing_overlay(image, gt, label, parser.palette)
    for path, array in ((args.out, panel), (args.label_out, label)):
        if path:
            os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
            if not cv2.imwrite(path, array):
                raise SystemExit(f'cannot write {path}')
    counts = np.bincount(label.ravel(), minlength=len(parser.classes))
    found = ', '.join(f'{name} {int(n)}' for name, n in zip(parser.classes, counts) if n)
    print(f'{args.image}: {label.shape[1]}x{label.shape[0]} label map ({found} pixels); '
          f'overlay written to {args.out}')


if __name__ == '__main__':
    main()
