//! Local authentication: argon2id passwords, JWT access tokens, rotating refresh tokens.
