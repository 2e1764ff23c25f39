"""The generation app's models, one module per part of the design; Django and every caller import
them from here."""

from generation.models.base import RunBase, Status
from generation.models.catalog import (
    BehaviorDirection,
    Collection,
    Dataset,
    DatasetKind,
    DatasetOrigin,
    DatasetPurpose,
    Example,
)
from generation.models.evaluation import (
    EvaluationItem,
    EvaluationRun,
    EvaluationSuite,
    EvaluationTask,
    PromptFormat,
    RunScorer,
    Scorer,
)
from generation.models.jobs import Job, JobKind
from generation.models.pipeline import Candidate, CandidateDecision, GenerationMethod, GenerationRun

__all__ = [
    "Status",
    "RunBase",
    "BehaviorDirection",
    "Collection",
    "DatasetKind",
    "DatasetOrigin",
    "DatasetPurpose",
    "Dataset",
    "Example",
    "JobKind",
    "Job",
    "PromptFormat",
    "EvaluationTask",
    "EvaluationRun",
    "EvaluationSuite",
    "RunScorer",
    "Scorer",
    "EvaluationItem",
    "GenerationMethod",
    "GenerationRun",
    "CandidateDecision",
    "Candidate",
]
