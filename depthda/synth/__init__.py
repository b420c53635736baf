"""Procedural street scenes with exact depth: camera, random scene description, ray caster, dataset writer."""
