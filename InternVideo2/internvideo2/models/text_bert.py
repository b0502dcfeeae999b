"""The "MED" BERT text encoder of the InternVideo2 stage-2 models, built from transformers' BERT.

One BERT stack plays two roles, split at ``fusion_layer``:

* layers ``[0, fusion_layer)`` are a plain bidirectional text encoder (``mode="text"``);
* layers ``[fusion_layer, num_hidden_layers)`` add a cross-attention sub-layer over the video
  tokens and form the video-text fusion encoder (``mode="fusion"``), whose ``[CLS]`` feeds the
  matching head; ``mode="multi_modal"`` runs both halves in one call.

The layers are transformers' own ``BertLayer`` (the fusion layers are its ``add_cross_attention``
decoder layers with bidirectional self-attention) whose cross-attention keys and values read
``encoder_width``-wide video tokens, as the original's ``xbert``. Parameter names equal the
released checkpoints' ``text_encoder.bert.*`` and ``text_encoder.cls.*`` keys.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import BertConfig
from transformers.modeling_outputs import BaseModelOutput, MaskedLMOutput
from transformers.models.bert.modeling_bert import BertEmbeddings, BertLayer, BertOnlyMLMHead

MODES = ("text", "fusion", "multi_modal")


def med_bert_config(
    fusion_layer: int,
    encoder_width: int,
    config_file: str | Path | None = None,
    attn_implementation: str = "sdpa",
    **overrides,
) -> BertConfig:
    """A BERT config for :class:`MedBertModel` (``config_file``: a BERT ``config.json``; else base)."""
    values = {}
    if config_file is not None:
        path = Path(config_file)
        try:
            values = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read BERT config {path}: {err}") from err
    values.update(overrides)
    # The original's JSON files carry their own fusion/encoder settings; the model config wins.
    values.update(
        fusion_layer=fusion_layer, encoder_width=encoder_width, is_decoder=False, add_cross_attention=False
    )
    config = BertConfig(**{k: v for k, v in values.items() if k not in ("architectures", "model_type")})
    if not 0 <= fusion_layer <= config.num_hidden_layers:
        raise ValueError(f"fusion_layer={fusion_layer} must lie in [0, {config.num_hidden_layers}]")
    config._attn_implementation = attn_implementation
    return config


def _text_layer(config: BertConfig, index: int) -> BertLayer:
    return BertLayer(config, layer_idx=index)


def _fusion_layer(config: BertConfig, index: int) -> BertLayer:
    """A BERT layer with cross-attention over ``encoder_width``-wide tokens, bidirectional throughout."""
    cross = copy.deepcopy(config)
    # transformers only builds cross-attention in decoder layers; MED's fusion layers are not
    # causal, which the explicit padding mask (never None here) and is_causal=False guarantee.
    cross.is_decoder, cross.add_cross_attention = True, True
    layer = BertLayer(cross, layer_idx=index)
    layer.attention.self.is_causal = False
    attn = layer.crossattention.self
    attn.key = nn.Linear(config.encoder_width, attn.all_head_size)
    attn.value = nn.Linear(config.encoder_width, attn.all_head_size)
    return layer


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(B, L)`` 1 = keep / 0 = pad -> ``(B, 1, 1, L)`` additive attention bias."""
    if mask.dim() != 2:
        raise ValueError(f"attention masks must be (batch, length), got shape {tuple(mask.shape)}")
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class MedBertEncoder(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.layer = nn.ModuleList(
            _text_layer(config, i) if i < config.fusion_layer else _fusion_layer(config, i)
            for i in range(config.num_hidden_layers)
        )
        self.grad_checkpointing = False

    def forward(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor,
        layers: range,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        for index in layers:
            layer = self.layer[index]
            extra = (
                (encoder_hidden_states, encoder_attention_mask) if index >= self.config.fusion_layer else ()
            )
            if self.grad_checkpointing and self.training:
                hidden = checkpoint(layer, hidden, attention_mask, *extra, use_reentrant=False)
            else:
                hidden = layer(hidden, attention_mask, *extra)
        return hidden


class MedBertModel(nn.Module):
    """BERT embeddings + the text/fusion encoder (keys ``embeddings.*``, ``encoder.layer.N.*``)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = MedBertEncoder(config)

    def _layers(self, mode: str) -> range:
        fusion = self.config.fusion_layer
        return {
            "text": range(fusion),
            "fusion": range(fusion, self.config.num_hidden_layers),
            "multi_modal": range(self.config.num_hidden_layers),
        }[mode]

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_embeds: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        mode: str = "multi_modal",
        token_type_ids: torch.Tensor | None = None,
    ) -> BaseModelOutput:
        """``mode="fusion"`` takes the text encoder's output as ``encoder_embeds`` instead of ids."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == "fusion":
            if encoder_embeds is None:
                raise ValueError("mode='fusion' needs encoder_embeds (the text encoder's output)")
            hidden = encoder_embeds
        else:
            if input_ids is None:
                raise ValueError(f"mode={mode!r} needs input_ids")
            hidden = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        layers = self._layers(mode)
        uses_video = mode != "text" and len(layers) > 0
        if uses_video and encoder_hidden_states is None:
            raise ValueError(f"mode={mode!r} needs encoder_hidden_states (the video tokens)")
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        mask = additive_mask(attention_mask, hidden.dtype)
        video_mask = None
        if uses_video:
            if encoder_attention_mask is None:
                encoder_attention_mask = torch.ones(
                    encoder_hidden_states.shape[:2], dtype=torch.long, device=hidden.device
                )
            video_mask = additive_mask(encoder_attention_mask, hidden.dtype)
            encoder_hidden_states = encoder_hidden_states.to(hidden.dtype)
        hidden = self.encoder(hidden, mask, layers, encoder_hidden_states if uses_video else None, video_mask)
        return BaseModelOutput(last_hidden_state=hidden)


class MedBertForMaskedLM(nn.Module):
    """:class:`MedBertModel` + BERT's MLM head (keys ``bert.*``, ``cls.predictions.*``).

    As in BERT, the decoder weight is the word-embedding matrix and ``decoder.bias`` is
    ``predictions.bias``: checkpoints list both names for each shared tensor.
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = MedBertModel(config)
        self.cls = BertOnlyMLMHead(config)
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight
        self.cls.predictions.decoder.bias = self.cls.predictions.bias

    def forward(self, labels: torch.Tensor | None = None, **kwargs) -> MaskedLMOutput:
        hidden = self.bert(**kwargs).last_hidden_state
        logits = self.cls(hidden)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
        return MaskedLMOutput(loss=loss, logits=logits)


def init_bert_weights(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation: normal(0, std) linears and embeddings, zero biases, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=std)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                m.weight.data[m.padding_idx].zero_()
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, BertOnlyMLMHead):
            nn.init.zeros_(m.predictions.bias)


def build_text_encoder(
    config: BertConfig, with_mlm_head: bool = True, grad_checkpointing: bool = False
) -> MedBertForMaskedLM | MedBertModel:
    """The stage-2 text encoder: with the MLM head for pretraining, the bare model otherwise."""
    model = MedBertForMaskedLM(config) if with_mlm_head else MedBertModel(config)
    init_bert_weights(model, config.initializer_range)
    bert = model.bert if with_mlm_head else model
    bert.encoder.grad_checkpointing = grad_checkpointing
    return model


def load_pretrained_bert(model: MedBertForMaskedLM | MedBertModel, folder: str | Path) -> list[str]:
    """Load a Hugging Face BERT checkpoint folder (``model.safetensors``/``pytorch_model.bin``).

    Keys may carry ``bert.`` or not (``BertModel`` vs ``BertForMaskedLM`` exports); the
    cross-attention weights are new and stay initialised. Returns the names left uninitialised.
    """
    from ivtools.checkpoint import load_state_dict_file, unwrap_state_dict

    folder = Path(folder)
    files = [folder / "model.safetensors", folder / "pytorch_model.bin"]
    found = next((f for f in files if f.is_file()), None)
    if found is None:
        raise FileNotFoundError(f"no model.safetensors or pytorch_model.bin in BERT folder {folder}")
    state = unwrap_state_dict(load_state_dict_file(found))
    has_head = isinstance(model, MedBertForMaskedLM)
    mapped = {}
    for key, value in state.items():
        key = key if key.startswith(("bert.", "cls.")) else f"bert.{key}"
        if key.startswith("cls.") and not has_head:
            continue
        mapped[key if has_head else key.removeprefix("bert.")] = value
    own = model.state_dict()
    usable = {k: v for k, v in mapped.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))
