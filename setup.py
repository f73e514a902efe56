"""Install faceanalysis: ``pip install -e .`` (then ``pip install --no-deps --no-build-isolation
-r requirements/mmpose.txt`` for mmpose, whose metadata pins the unbuildable chumpy)."""
import os.path as osp
import re

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_requirements(name):
    """Requirement lines of ``requirements/<name>.txt`` without comments and pip options."""
    lines = []
    with open(osp.join(HERE, 'requirements', f'{name}.txt')) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                lines.append(line)
    return lines


def read_version():
    with open(osp.join(HERE, 'faceanalysis', 'version.py')) as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


setup(
    name='faceanalysis',
    version=read_version(),
    description='Facial representation learning and its downstream tasks on MMEngine',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    python_requires='>=3.10',
    install_requires=read_requirements('runtime'),
    extras_require=dict(tests=read_requirements('tests'), optional=read_requirements('optional')),
    license='Apache-2.0',
    zip_safe=False,
)
