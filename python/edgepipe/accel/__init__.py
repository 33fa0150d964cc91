"""Internals of edgepipe's accelerator layer (the public API is ``edgepipe.accelerators``).

- :mod:`.names`: accelerator names, plugin specs.
- :mod:`.device`: the facts policy rules and caches are keyed on.
- :mod:`.crash`: crash marks and the denylist they feed.
- :mod:`.policy`: allow/deny rules from a remote-config style JSON document.
- :mod:`.guard`: what a Session or Pool applies before compiling.
"""
