"""Procedural street scenes with exact depth: camera, random scene description, renderer (ray casting,
appearance, lighting, camera response), dataset writer."""
