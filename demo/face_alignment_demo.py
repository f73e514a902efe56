"""Face alignment demo: landmarks of one face, drawn on the image with OpenCV.

    python demo/face_alignment_demo.py IMAGE CONFIG CHECKPOINT --box x1,y1,x2,y2 \
        [--out landmarks.png] [--device cpu] [--radius 2]

``--box`` is the face box in the image's pixels (for 300W / WFLW models HRNet's box convention:
the config's test pipeline crops it at face scale 0.8). Writes the image with the box (green)
and the landmarks (red dots, with their indices when ``--show-ids``) and prints the landmarks as
``x y`` lines in original pixels. mmpose's visualiser is not used (it crashes with NumPy 2.4).
"""
import argparse
import os
import os.path as osp
import sys

import cv2
import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_box(text):
    values = [float(v) for v in text.replace(' ', '').split(',') if v]
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f'--box needs x1,y1,x2,y2, got {text!r}')
    return values


def draw_landmarks(image, points, box=None, color=(0, 0, 255), radius=None, show_ids=False):
    """A copy of the BGR ``image`` with ``points`` ((K, 2) x, y) and ``box`` drawn."""
    canvas = image.copy()
    if radius is None:
        radius = max(1, int(round(max(image.shape[:2]) / 256)))
    if box is not None:
        x1, y1, x2, y2 = [int(round(v)) for v in box]
        cv2.rectangle(canvas, (x1, y1), (x2, y2), (0, 255, 0), max(1, radius // 2))
    for i, (x, y) in enumerate(np.asarray(points, dtype=np.float64).reshape(-1, 2)):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        center = (int(round(x)), int(round(y)))
        cv2.circle(canvas, center, radius, color, -1, cv2.LINE_AA)
        if show_ids:
            cv2.putText(canvas, str(i), (center[0] + radius, center[1] - radius),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.3, color, 1, cv2.LINE_AA)
    return canvas


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='alignment config (configs/alignment/*.py)')
    parser.add_argument('checkpoint', help='trained checkpoint')
    parser.add_argument('--box', type=parse_box, required=True, help='face box x1,y1,x2,y2')
    parser.add_argument('--out', default='landmarks.png', help='output image (PNG)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--radius', type=int, default=None, help='dot radius in pixels')
    parser.add_argument('--show-ids', action='store_true', help='write landmark indices')
    args = parser.parse_args(argv)

    from faceanalysis.apis import FaceAligner

    image = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if image is None:
        parser.error(f'cannot read image {args.image}')
    aligner = FaceAligner(args.config, args.checkpoint, device=args.device)
    points = aligner.align(image, args.box)
    drawn = draw_landmarks(image, points, args.box, radius=args.radius, show_ids=args.show_ids)
    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    if not cv2.imwrite(args.out, drawn):
        raise SystemExit(f'could not write {args.out}')
    for x, y in points:
        print(f'{x:.2f} {y:.2f}')
    print(f'{len(points)} landmarks drawn to {args.out}', file=sys.stderr)


if __name__ == '__main__':
    main()
