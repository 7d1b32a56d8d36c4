"""Engines: start, stop, kill and restart real servers, or open embedded table folders."""
