"""Provider adapters: one per wire format, chosen by a backend's ``provider``.

See :mod:`.base` for the interface. OpenAI, Azure OpenAI and OpenAI-compatible servers share
:class:`OpenAIAdapter` (they differ only in URL and credential header, precomputed per
backend); Anthropic translates with :class:`AnthropicAdapter`.
"""

from aigw_contract import Provider

from .anthropic import AnthropicAdapter
from .base import Adapter, Json, StreamDecoder
from .openai import OpenAIAdapter

__all__ = ["ADAPTERS", "Adapter", "AnthropicAdapter", "Json", "OpenAIAdapter", "StreamDecoder"]

_OPENAI = OpenAIAdapter()
ADAPTERS: dict[Provider, Adapter] = {
    Provider.OPENAI: _OPENAI,
    Provider.AZURE_OPENAI: _OPENAI,
    Provider.OPENAI_COMPATIBLE: _OPENAI,
    Provider.ANTHROPIC: AnthropicAdapter(),
}
