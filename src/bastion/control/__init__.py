"""The control plane: config reload, the audit log of changes, and recent security events.

Nothing here is on the request path. The admin API (:mod:`bastion.admin`) and the serving
runtime (:mod:`bastion.engine.runtime`) drive these pieces.
"""
