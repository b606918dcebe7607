"""Task types. Importing this package registers the built-in ones."""

from onepass.models.tasks.attributes import AttributesTask
from onepass.models.tasks.base import TASK_TYPES, Metric, OutputSpec, Task, build_task, register_task
from onepass.models.tasks.depth import DepthTask
from onepass.models.tasks.normals import NormalsTask
from onepass.models.tasks.people import PeopleTask
from onepass.models.tasks.saliency import SaliencyTask
from onepass.models.tasks.semseg import SemsegTask

__all__ = [
    "TASK_TYPES",
    "AttributesTask",
    "DepthTask",
    "Metric",
    "NormalsTask",
    "OutputSpec",
    "PeopleTask",
    "SaliencyTask",
    "SemsegTask",
    "Task",
    "build_task",
    "register_task",
]
