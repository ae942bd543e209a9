"""Practice 4, encryption in transit: server and upstream TLS contexts, the development CA,
client certificates (mTLS), pins, certificate expiry, and field-level encryption."""
