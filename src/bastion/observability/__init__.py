"""Events, logs and metrics: what bastion tells operators about the traffic it sees."""
