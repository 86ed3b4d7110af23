"""Fangpin's shared contracts: the event envelope, the payload of every event, topic names.

Every service depends on this package and on nothing of another service.
"""
