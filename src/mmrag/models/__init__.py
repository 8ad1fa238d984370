"""Models: where a model comes from (`resolve`) and the encoders and LMs built on it.

Nothing is imported here, so `import mmrag.models` stays cheap; import the module you need.
"""
