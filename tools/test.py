# Test (evaluate) a checkpoint with MMEngine's Runner (OpenMMLab tools/test.py conventions).
#
#   python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out metrics.json]
#                        [--show-dir DIR] [--cfg-options k=v ...] [--launcher ...]
#
# --out writes the metrics as JSON (mmpose style). Distributed: tools/dist_test.sh.
#
# Face parsing (a config whose test_evaluator is FaceParsingMetric): report.md and report.json go
# into the work dir (per-class F1, foreground mean, mIoU, FaRL's published numbers beside ours,
# faceanalysis.evaluation.write_parsing_report); the dataset and recipe they are compared with
# come from the config's `paper_reference = dict(dataset=..., recipe=...)`. Testing the best and
# then the last checkpoint into the same work dir lists both in the report. --show-dir writes one
# PNG per image: image | ground truth | prediction, in original-image space.
#
# Face alignment (FaceAlignmentMetric): report.md / report.json with every subset and FaRL's
# numbers beside ours and a CED curve PNG per test subset in the work dir; --show-dir draws the
# predicted (red) and ground-truth (green) landmarks on every test image.
import os.path as osp
import sys

_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, _REPO_ROOT)

import faceanalysis  # noqa: E402,F401  (compat shims before anything from mmcv/mmseg/mmpose)

import argparse  # noqa: E402
import json  # noqa: E402
import numbers  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.dist import is_main_process  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmengine.utils import import_modules_from_strings  # noqa: E402

from faceanalysis.compat import setup_cpu_distributed  # noqa: E402
from faceanalysis.datasets.synthetic import prepare_synthetic_data  # noqa: E402

#: visualization hook per default scope, added by --show-dir when the config has none
_VIS_HOOKS = {'mmseg': 'SegVisualizationHook', 'mmpose': 'PoseVisualizationHook'}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a faceanalysis model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save evaluation logs')
    parser.add_argument('--out', help='write the metrics to this JSON file')
    parser.add_argument('--show-dir', help='draw the predictions into this directory')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs such as '
        'test_dataloader.batch_size=4 or "a.b=[1,2]" (no spaces inside a value)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _evaluator_types(evaluator) -> list:
    if evaluator is None:
        return []
    if isinstance(evaluator, (list, tuple)):
        return [t for item in evaluator for t in _evaluator_types(item)]
    if 'metrics' in evaluator:  # an Evaluator config
        return _evaluator_types(evaluator['metrics'])
    return [evaluator.get('type')]


def is_alignment_test(cfg: Config) -> bool:
    """Whether the test evaluator is (or includes) ``FaceAlignmentMetric``."""
    return 'FaceAlignmentMetric' in _evaluator_types(cfg.get('test_evaluator'))


def is_parsing_test(cfg: Config) -> bool:
    """Whether the test evaluator is (or includes) ``FaceParsingMetric``."""
    return 'FaceParsingMetric' in _evaluator_types(cfg.get('test_evaluator'))


#: dataset class -> benchmark name of faceanalysis.evaluation.paper_results
_PARSING_BENCHMARKS = {'LaPaDataset': 'lapa', 'CelebAMaskHQDataset': 'celebamaskhq'}


def parsing_reference(cfg: Config, config_path: str):
    """``(dataset, recipe)`` of the report: ``cfg.paper_reference``, else guessed (or None)."""
    reference = dict(cfg.get('paper_reference') or {})
    dataset = reference.get('dataset') or _PARSING_BENCHMARKS.get(
        cfg.test_dataloader.dataset.get('type'))
    recipe = reference.get('recipe') or osp.splitext(osp.basename(config_path))[0]
    return dataset, recipe


def checkpoint_entry(cfg: Config, checkpoint: str, metrics: dict):
    """``('best' | 'last' | None, dict(checkpoint, epoch or iter, mean_f1))`` from the file name
    (MMEngine's ``best_<metric>_epoch_N.pth`` / ``epoch_N.pth`` / ``iter_N.pth``)."""
    name = osp.basename(checkpoint)
    match = re.search(r'(epoch|iter)_(\d+)\.pth$', name)
    entry = dict(checkpoint=checkpoint, mean_f1=metrics.get('mean_f1'))
    kind = None
    if match:
        entry[match.group(1)] = int(match.group(2))
        train_cfg = cfg.get('train_cfg') or {}
        last = train_cfg.get('max_epochs' if match.group(1) == 'epoch' else 'max_iters')
        if name.startswith('best_'):
            kind = 'best'
        elif last is not None and int(match.group(2)) == int(last):
            kind = 'last'
    elif name.startswith('best_'):
        kind = 'best'
    return kind, entry


def write_report(cfg: Config, args, metrics: dict, class_names) -> None:
    """``report.md`` / ``report.json`` of a parsing test in ``cfg.work_dir``."""
    from faceanalysis.evaluation import write_parsing_report
    dataset, recipe = parsing_reference(cfg, args.config)
    if dataset is None:
        print_log('tools/test.py: no report (set paper_reference=dict(dataset=..., recipe=...) '
                  'in the config)', logger='current')
        return
    extra = dict(config=args.config, checkpoint=args.checkpoint,
                 class_names=list(class_names) if class_names else None)
    kind, entry = checkpoint_entry(cfg, args.checkpoint, metrics)
    previous = osp.join(cfg.work_dir, 'report.json')
    if osp.isfile(previous):  # keep the other checkpoint (best / last) of an earlier test
        try:
            with open(previous) as f:
                old = json.load(f).get('extra') or {}
        except (OSError, ValueError):
            old = {}
        if old.get('config') == args.config:
            for other in ('best', 'last'):
                if old.get(other) and other != kind:
                    extra[other] = old[other]
    if kind is not None:
        extra[kind] = entry
    md_path, _ = write_parsing_report(to_builtin(metrics), dataset, recipe, cfg.work_dir,
                                      extra=extra)
    print_log(f'report written to {md_path} (and report.json)', logger='current')


def enable_parsing_visualization(cfg: Config, show_dir: str) -> None:
    """Write image | ground truth | prediction panels of every test sample into ``show_dir``."""
    import faceanalysis.visualization  # noqa: F401  (registers ParsingVisualizationHook)
    hooks = list(cfg.get('custom_hooks') or [])
    hooks.append(dict(type='ParsingVisualizationHook', out_dir=show_dir))
    cfg.custom_hooks = hooks


def enable_visualization(cfg: Config, show_dir: str) -> None:
    """Draw every test sample into ``show_dir``."""
    if is_parsing_test(cfg):
        enable_parsing_visualization(cfg, show_dir)
        return
    if is_alignment_test(cfg):
        # drawn after the test by write_alignment_outputs (OpenCV): mmpose's PoseLocalVisualizer
        # fails on numpy 2.4 (int() of a 1-element array in draw_circles)
        return
    if cfg.get('default_hooks') is None:
        cfg.default_hooks = {}
    if cfg.default_hooks.get('visualization') is None:
        scope = cfg.get('default_scope')
        if scope not in _VIS_HOOKS:
            raise SystemExit(f'tools/test.py: --show-dir needs default_hooks.visualization in the '
                             f'config (no default for default_scope={scope!r})')
        cfg.default_hooks.visualization = dict(type=_VIS_HOOKS[scope])
    hook = cfg.default_hooks.visualization  # (ConfigDict copies on assignment: read it back)
    hook['draw'] = True
    hook['interval'] = 1
    if 'Pose' in hook['type']:
        hook['out_dir'] = show_dir  # mmpose writes one file per image there
    else:
        if cfg.get('visualizer') is None:
            raise SystemExit('tools/test.py: --show-dir needs a `visualizer` in the config')
        cfg.visualizer['save_dir'] = show_dir  # mmseg: <show_dir>/vis_data/vis_image/*.png


def to_builtin(value):
    """Metric values (numpy scalars, tensors, nested containers) as JSON-serialisable objects."""
    if isinstance(value, dict):
        return {str(k): to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_builtin(v) for v in value]
    if hasattr(value, 'tolist'):  # numpy arrays/scalars, torch tensors
        return to_builtin(value.tolist())
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return str(value)


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
        if cfg.get('custom_imports'):  # fromfile imported the config's own list only
            import_modules_from_strings(**cfg.custom_imports)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.show_dir:
        enable_visualization(cfg, args.show_dir)

    if cfg.get('synthetic_data'):
        prepare_synthetic_data(cfg.synthetic_data, logger=lambda msg: print_log(msg, 'current'))
    setup_cpu_distributed(cfg, args.launcher)

    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    metrics = runner.test()

    if is_parsing_test(cfg) and is_main_process():
        write_report(cfg, args, metrics,
                     runner.test_dataloader.dataset.metainfo.get('classes'))
    if is_main_process():
        from faceanalysis.apis.reporting import (find_alignment_metric,
                                                 write_alignment_outputs)
        if find_alignment_metric(runner) is not None:
            # report.md / report.json, one CED PNG per test subset, landmarks with --show-dir
            write_alignment_outputs(runner, metrics, cfg, cfg.work_dir, show_dir=args.show_dir)
    if args.out and is_main_process():
        out_dir = osp.dirname(osp.abspath(args.out))
        os.makedirs(out_dir, exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(to_builtin(metrics), f, indent=2)
        runner.logger.info(f'metrics written to {args.out}')


if __name__ == '__main__':
    main()
