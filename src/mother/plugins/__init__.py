"""Mixins that add behaviour to record classes: triggers and field casting.

``class ClsStars(DbMother, MotherTrigger)`` or ``class ClsStars(DbMother, MotherCaster)``.
"""

from .caster import MotherCaster
from .triggers import MotherTrigger

__all__ = ["MotherCaster", "MotherTrigger"]
