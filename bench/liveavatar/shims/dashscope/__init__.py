"""An empty stand-in for the dashscope SDK, for the random-weights harness only.

Live Avatar imports it at module level for its optional prompt extension, a hosted service that the harness
never calls: any use of it raises AttributeError.
"""
