"""Screens pushed over the main screen: help, prompts, fix preview, relaunch watch, compare."""
