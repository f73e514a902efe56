from .backbones import *  # noqa: F401,F403
from .face_clip import FaceCLIP  # noqa: F401
from .heads import *  # noqa: F401,F403
from .pose_estimators import *  # noqa: F401,F403
from .segmentors import *  # noqa: F401,F403
