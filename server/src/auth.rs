//! Bearer tokens: several at once (so one can be rotated without downtime), each with the
//! name written as the events' `actor` and the `source` they are recorded under. Compared
//! in constant time; a token never reaches a log line or an error message.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// One accepted token.
#[derive(Clone)]
pub struct Token {
    /// Written as each event's `actor`.
    pub name: String,
    /// Written as each event's `source`.
    pub source: String,
    /// What `active: false` from this token's directory records: a suspension (the
    /// default) or a leave.
    pub deactivate: Deactivate,
    /// What the token may do.
    pub scope: Scope,
    /// SHA-256 of the token: what is kept and compared (the same length whatever the token).
    digest: [u8; 32],
}

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Provision: the SCIM endpoints, and read the events API and the metrics.
    Provision,
    /// Audit, read-only: the audit API under `/v1`, the events API and the metrics;
    /// never a SCIM endpoint.
    Audit,
}

/// What a deactivation (`active: false`) is in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deactivate {
    /// `identity.suspended` (reactivation: `identity.reactivated`).
    Suspend,
    /// `identity.left` (reactivation: `identity.rejoined`), for directories whose
    /// deactivation is the offboarding.
    Leave,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("name", &self.name).field("source", &self.source).finish_non_exhaustive()
    }
}

impl Token {
    pub fn new(name: &str, source: &str, secret: &str) -> Token {
        Token {
            name: name.to_string(),
            source: source.to_string(),
            deactivate: Deactivate::Suspend,
            scope: Scope::Provision,
            digest: Sha256::digest(secret.as_bytes()).into(),
        }
    }

    pub fn deactivating(mut self, deactivate: Deactivate) -> Token {
        self.deactivate = deactivate;
        self
    }

    /// A read-only token of the audit API.
    pub fn auditing(mut self) -> Token {
        self.scope = Scope::Audit;
        self
    }
}

/// Why a token file does not load. Names the line, never its content.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}:{line}: expected `TOKEN`, `NAME SOURCE TOKEN [suspend|leave]` or `NAME audit TOKEN` (the token is not shown)")]
    Malformed { path: String, line: usize },
    #[error("{path}:{line}: a token of fewer than 16 characters is too easy to guess")]
    TooShort { path: String, line: usize },
    #[error("no token: give --token-file or TENURE_SCIM_TOKEN")]
    None,
}

/// Parses a token file: one token per line, either the bare token (actor and source
/// `scim`) or `NAME SOURCE TOKEN`, optionally followed by what a deactivation records
/// (`suspend`, the default, or `leave`); a SOURCE of `audit` makes a read-only token of
/// the audit API. Blank lines and `#` comments are skipped.
pub fn parse_tokens(path: &str, text: &str) -> Result<Vec<Token>, TokenError> {
    let mut tokens = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let malformed = || TokenError::Malformed { path: path.to_string(), line: i + 1 };
        let (token, mode) = match fields.as_slice() {
            [secret] => (("scim", "scim", *secret), Deactivate::Suspend),
            [name, source, secret] => ((*name, *source, *secret), Deactivate::Suspend),
            [name, source, secret, "suspend"] => ((*name, *source, *secret), Deactivate::Suspend),
            [name, source, secret, "leave"] => ((*name, *source, *secret), Deactivate::Leave),
            _ => return Err(malformed()),
        };
        if token.2.len() < 16 {
            return Err(TokenError::TooShort { path: path.to_string(), line: i + 1 });
        }
        let t = Token::new(token.0, token.1, token.2).deactivating(mode);
        tokens.push(if token.1 == "audit" { t.auditing() } else { t });
    }
    Ok(tokens)
}

/// The token an `Authorization` header carries, if it is one of `tokens`. Every token is
/// compared, in constant time, whichever matches.
pub fn check<'a>(tokens: &'a [Token], authorization: Option<&[u8]>) -> Option<&'a Token> {
    let header = authorization?;
    let secret = header.strip_prefix(b"Bearer ").or_else(|| header.strip_prefix(b"bearer "))?;
    let digest: [u8; 32] = Sha256::digest(secret).into();
    let mut found = None;
    for t in tokens {
        if bool::from(t.digest.ct_eq(&digest)) {
            found = Some(t);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_match() {
        let tokens = parse_tokens(
            "t",
            "# rotation\nokta-1 okta aaaaaaaaaaaaaaaa1\n\nbbbbbbbbbbbbbbbb2\nhr hr cccccccccccccccc3 leave\n",
        )
        .unwrap();
        assert_eq!(tokens.len(), 3);
        assert_eq!((tokens[0].deactivate, tokens[2].deactivate), (Deactivate::Suspend, Deactivate::Leave));
        assert!(parse_tokens("t", "a b cccccccccccccccc3 vanish\n").is_err());
        assert_eq!(check(&tokens, Some(b"Bearer aaaaaaaaaaaaaaaa1")).map(|t| t.name.as_str()), Some("okta-1"));
        assert_eq!(check(&tokens, Some(b"Bearer bbbbbbbbbbbbbbbb2")).map(|t| t.source.as_str()), Some("scim"));
        assert!(check(&tokens, Some(b"Bearer aaaaaaaaaaaaaaaa")).is_none());
        assert!(check(&tokens, Some(b"Basic aaaaaaaaaaaaaaaa1")).is_none());
        assert!(check(&tokens, None).is_none());
        let err = parse_tokens("t", "a b\n").unwrap_err().to_string();
        assert!(err.contains("t:1") && !err.contains("a b"), "{err}");
        assert!(parse_tokens("t", "short\n").is_err());
        assert!(!format!("{:?}", tokens[0]).contains("aaaa"));
    }
}
