"""modeling-ade: Hub-ready models for biomedical information extraction.

Importing the package registers the configs with ``AutoConfig``, the models with the matching
``AutoModel...`` classes and the pipelines with ``PIPELINE_REGISTRY``.
"""

from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification
from transformers.pipelines import PIPELINE_REGISTRY

from .hub.configuration_bert_crf import BertCrfConfig
from .hub.configuration_joint_ner_re import JointNerReConfig
from .hub.modeling_bert_crf import BertCrfForTokenClassification, BertCrfOutput
from .hub.modeling_joint_ner_re import JointNerReForAdeExtraction, JointNerReOutput
from .hub.pipeline_ade_extraction import AdeExtractionPipeline

AutoConfig.register(JointNerReConfig.model_type, JointNerReConfig)
AutoModel.register(JointNerReConfig, JointNerReForAdeExtraction)
JointNerReConfig.register_for_auto_class()
JointNerReForAdeExtraction.register_for_auto_class("AutoModel")
PIPELINE_REGISTRY.register_pipeline(
    "ade-extraction", pipeline_class=AdeExtractionPipeline, pt_model=AutoModel, type="text"
)

AutoConfig.register(BertCrfConfig.model_type, BertCrfConfig)
AutoModelForTokenClassification.register(BertCrfConfig, BertCrfForTokenClassification)
BertCrfConfig.register_for_auto_class()
BertCrfForTokenClassification.register_for_auto_class("AutoModelForTokenClassification")

__all__ = [
    "AdeExtractionPipeline",
    "BertCrfConfig",
    "BertCrfForTokenClassification",
    "BertCrfOutput",
    "JointNerReConfig",
    "JointNerReForAdeExtraction",
    "JointNerReOutput",
]
