"""Task families, one file each; `TASKS` maps a family name to its Task class.

Adding a family = one new file with its Task (scene, templates, success, privileged state, variation, expert),
its entry here and in `envs.objects.FAMILIES`, and its tests.
"""

from envs.objects import COLORS, FAMILIES, HELDOUT_COLORS, HELDOUT_COMBOS, MIX, SHAPES, SPLITS, TRAIN_COLORS
from envs.tasks.base import Task
from envs.tasks.common import TabletopOptions
from envs.tasks.drawer import DrawerTask
from envs.tasks.move_near import MoveNearTask
from envs.tasks.pick import PickTask
from envs.tasks.place_in import PlaceInTask
from envs.tasks.push import PushTask
from envs.tasks.stack import StackTask

TASKS: dict[str, type[Task]] = {
    "pick": PickTask,
    "move_near": MoveNearTask,
    "place_in": PlaceInTask,
    "stack": StackTask,
    "push": PushTask,
    "drawer": DrawerTask,
}

__all__ = [
    "COLORS",
    "FAMILIES",
    "HELDOUT_COLORS",
    "HELDOUT_COMBOS",
    "MIX",
    "SHAPES",
    "SPLITS",
    "TASKS",
    "TRAIN_COLORS",
    "TabletopOptions",
    "Task",
]
