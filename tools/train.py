# Train a faceanalysis model with MMEngine's Runner (OpenMMLab tools/train.py conventions).
#
#   python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--no-validate]
#                         [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
#
# --resume without a value resumes from the latest checkpoint in the work dir; with a path it
# resumes from that checkpoint. Distributed: tools/dist_train.sh, tools/slurm_train.sh.
import os.path as osp
import sys

_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, _REPO_ROOT)

import faceanalysis  # noqa: E402,F401  (compat shims before anything from mmcv/mmseg/mmpose)

import argparse  # noqa: E402
import os  # noqa: E402

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmengine.utils import import_modules_from_strings  # noqa: E402

from faceanalysis.compat import setup_cpu_distributed  # noqa: E402
from faceanalysis.datasets.synthetic import prepare_synthetic_data  # noqa: E402
from faceanalysis.models.pretrained import check_pretrained_checkpoints  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a faceanalysis model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume training: without a value from the latest checkpoint in the work dir, '
        'with a value from that checkpoint')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (needs a CUDA, NPU or MLU device)')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate during training')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs such as '
        'train_cfg.max_iters=100 or "a.b=[1,2]" (no spaces inside a value)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (torch>=2.0) or --local_rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def amp_device_available() -> bool:
    """Whether MMEngine's ``AmpOptimWrapper`` can run here (it asserts one of these devices)."""
    from mmengine.device import is_cuda_available, is_mlu_available, is_npu_available
    return is_cuda_available() or is_npu_available() or is_mlu_available()


def merge_args(cfg: Config, args) -> Config:
    """Apply the command line to the config."""
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        if not amp_device_available():
            raise SystemExit(
                'tools/train.py: --amp needs a CUDA (or NPU/MLU) device, and this machine has '
                'none: MMEngine\'s AmpOptimWrapper cannot run on CPU. Drop --amp to train in '
                'float32.')
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper == 'AmpOptimWrapper':
            print_log('AMP training is already enabled in the config.', logger='current')
        else:
            if optim_wrapper != 'OptimWrapper':
                raise SystemExit(f'tools/train.py: --amp expects optim_wrapper.type='
                                 f'OptimWrapper, got {optim_wrapper}')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
        if cfg.get('custom_imports'):  # fromfile imported the config's own list only
            import_modules_from_strings(**cfg.custom_imports)
    cfg = merge_args(cfg, args)
    try:  # before any long work: MMEngine would only load the weights after building everything
        check_pretrained_checkpoints(cfg, args.config)
    except FileNotFoundError as error:
        raise SystemExit(f'tools/train.py: {error}')

    if cfg.get('synthetic_data'):
        prepare_synthetic_data(cfg.synthetic_data, logger=lambda msg: print_log(msg, 'current'))
    setup_cpu_distributed(cfg, args.launcher)

    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()
