"""Clients of the shared backends, written for the hot path (Redis); their failures surface as
:class:`bastion.errors.BackendUnavailable` and nothing else."""
