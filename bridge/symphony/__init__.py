"""Symphony (seed 000): company certificates (the trust store of certificate authentication)
and the session tokens certificate authentication issues."""
