"""Test stand-ins for Nuke: the ``nuke`` module (``fake_nuke.nuke``) and a script parser."""
