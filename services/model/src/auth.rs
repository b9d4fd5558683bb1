//! Bearer tokens, as both HTTP services check them: configured as SHA-256 digests (hex),
//! never as the tokens themselves, and compared in constant time.

use sha2::{Digest, Sha256};

/// SHA-256 hex of a token, as configured in `ingest.token_sha256` and
/// `worker.read_token_sha256`.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The token of an `Authorization` header value: `Bearer <token>`, the scheme in any case.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether `token`'s digest is one of `digests` (hex, any case). Every digest is compared
/// in full, whatever matched, so timing says nothing about how close a guess came.
pub fn token_matches(token: &str, digests: &[String]) -> bool {
    let mine = Sha256::digest(token.as_bytes());
    let mut found = 0u8;
    for d in digests {
        let Ok(want) = hex::decode(d.trim()) else {
            continue;
        };
        if want.len() == mine.len() {
            let diff = want
                .iter()
                .zip(mine.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            found |= (diff == 0) as u8;
        }
    }
    found == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_schemes_in_any_case() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("BEARER abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn tokens_match_their_digest_only() {
        let digests = vec!["zz".to_string(), hash_token("s3cret").to_uppercase()];
        assert!(token_matches("s3cret", &digests));
        assert!(!token_matches("s3cret ", &digests));
        assert!(!token_matches("other", &digests));
        assert!(!token_matches("s3cret", &[]));
    }
}
