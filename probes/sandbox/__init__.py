"""Sandbox VMs for tests and the demo: a fake root with a stub GPU, shim and simulated Ollama 0.24.0."""
from __future__ import annotations
