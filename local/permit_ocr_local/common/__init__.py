"""What every stand-in shares: the HTTP layer, the credential keyring and fault injection."""
