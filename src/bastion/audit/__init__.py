"""``bastion audit``: grade any API against the five practices (static, live, attested)."""
