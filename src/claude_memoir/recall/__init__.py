"""Recall: what later sessions and searches get back out of the store.

``project`` says which sessions belong together, ``context`` builds what
SessionStart injects.
"""
