"""Language models behind an OpenAI-compatible upstream (Ollama, vLLM, llama.cpp's server, hosted APIs)."""

from labelwise.llm.upstream import ChatResult, LLMUpstream, UpstreamConfig

__all__ = ["ChatResult", "LLMUpstream", "UpstreamConfig"]
