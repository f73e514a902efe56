from .backbones import *  # noqa: F401,F403
from .data_preprocessors import *  # noqa: F401,F403
from .face_clip import FaceCLIP  # noqa: F401
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .pose_estimators import *  # noqa: F401,F403
from .pretrainers import *  # noqa: F401,F403
from .segmentors import *  # noqa: F401,F403
