"""Engine traits: what each SQL dialect we compile to can say, in one place.

The bottom layer of the product (it imports sqlglot only), so dsl, consent_filter, audience and
exporters can all ask it without an import cycle. One object per dialect, as sqlglot keeps one
class per dialect; adding an engine is one entry in `engines.traits`.
"""

from engines.traits import TRAITS, EngineTraits, traits

__all__ = ["TRAITS", "EngineTraits", "traits"]
