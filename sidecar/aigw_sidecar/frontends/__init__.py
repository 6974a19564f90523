"""Front ends: one codec per caller API (see :mod:`.base`).

=====================  ==============================  ===================================
endpoint               codec                           canonical form
=====================  ==============================  ===================================
/v1/chat/completions   :data:`OPENAI_CHAT`             itself
/v1/embeddings         :data:`OPENAI_EMBEDDINGS`       itself
/v1/messages           :data:`ANTHROPIC_MESSAGES`      translated to and from OpenAI chat
/v1/messages/          :data:`ANTHROPIC_COUNT_TOKENS`  as /v1/messages (no output);
count_tokens                                           answers ``{"input_tokens": N}``
=====================  ==============================  ===================================
"""

from .anthropic_messages import (
    ANTHROPIC_COUNT_TOKENS,
    ANTHROPIC_MESSAGES,
    AnthropicCountTokens,
    AnthropicMessages,
)
from .base import Frontend, StreamEncoder
from .openai_chat import OPENAI_CHAT, OpenAIChat
from .openai_embeddings import OPENAI_EMBEDDINGS, OpenAIEmbeddings

__all__ = [
    "ANTHROPIC_COUNT_TOKENS",
    "ANTHROPIC_MESSAGES",
    "OPENAI_CHAT",
    "OPENAI_EMBEDDINGS",
    "AnthropicCountTokens",
    "AnthropicMessages",
    "Frontend",
    "OpenAIChat",
    "OpenAIEmbeddings",
    "StreamEncoder",
]
