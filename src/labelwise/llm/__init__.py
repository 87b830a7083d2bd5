"""Language models behind an OpenAI-compatible upstream (Ollama, vLLM, llama.cpp's server, hosted APIs)."""

from labelwise.llm.upstream import (
    BlockingUpstream,
    ChatResult,
    LLMUpstream,
    UpstreamConfig,
    configure_upstream,
    configured_upstream,
)

__all__ = [
    "BlockingUpstream",
    "ChatResult",
    "LLMUpstream",
    "UpstreamConfig",
    "configure_upstream",
    "configured_upstream",
]
