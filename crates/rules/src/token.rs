//! Invite tokens: making them from random bytes and telling a plausible one from junk.

use crate::{Error, Result};

/// Random bytes in a new token: 18 bytes (144 bits), as Prosody's `util.id.medium()`.
pub const TOKEN_BYTES: usize = 18;

/// Longest token we will look up. Ours are 24 characters; tokens from other creators may be
/// longer, but anything past this is junk and must not cost a storage read.
pub const MAX_TOKEN_LEN: usize = 256;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Encodes random bytes from the caller's CSPRNG as a token: base64url without padding, so the
/// token is URI-safe and looks exactly like the stock module's.
pub fn encode_token(random: &[u8; TOKEN_BYTES]) -> String {
    let mut out = String::with_capacity(TOKEN_BYTES * 4 / 3);
    for chunk in random.chunks(3) {
        let b = [chunk.first().copied().unwrap_or(0), chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let digits = chunk.len() + 1;
        for i in 0..digits {
            let shift = 18 - 6 * i;
            let index = ((n >> shift) & 0x3f) as usize;
            out.push(char::from(ALPHABET.get(index).copied().unwrap_or(b'A')));
        }
    }
    out
}

/// A new token from random bytes, or `None` when it would start with `-`: such a token reads as an
/// option on command lines (`prosodyctl shell invite show HOST -Ab…` fails in both releases'
/// argument parsers), so the caller draws again. One draw in 64 is thrown away.
pub fn new_token(random: &[u8; TOKEN_BYTES]) -> Option<String> {
    Some(encode_token(random)).filter(|token| !token.starts_with('-'))
}

/// Checks that a token could have been issued at all (URI-unreserved characters, sane length)
/// before anyone spends a storage read on it. Whole query strings, empty strings and
/// megabyte-long junk are rejected here.
pub fn check_token(token: &str) -> Result<&str> {
    let plausible = !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
    if plausible { Ok(token) } else { Err(Error::TokenInvalid) }
}

/// Characters of a token that logs may show: enough to tell invites apart, far too few to
/// redeem one (tokens are bearer secrets).
pub const SHOWN_CHARS: usize = 6;

/// A token as logs may carry it: its first [`SHOWN_CHARS`] characters and "…". Anything else a
/// caller passes (junk of any length or encoding) is cut the same way.
pub fn redact(token: &str) -> String {
    let mut shown: String = token.chars().take(SHOWN_CHARS).collect();
    if shown.len() < token.len() {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_base64url_without_padding() {
        let zeros = [0u8; TOKEN_BYTES];
        assert_eq!(encode_token(&zeros), "AAAAAAAAAAAAAAAAAAAAAAAA");
        let ones = [0xffu8; TOKEN_BYTES];
        assert_eq!(encode_token(&ones), "________________________");
        let mut bytes = [0u8; TOKEN_BYTES];
        bytes[..3].copy_from_slice(b"Man");
        assert!(encode_token(&bytes).starts_with("TWFu"));
        bytes[..3].copy_from_slice(&[0xfb, 0xef, 0xbe]);
        assert!(encode_token(&bytes).starts_with("----"));
    }

    #[test]
    fn new_tokens_never_start_like_an_option() {
        let mut bytes = [0u8; TOKEN_BYTES];
        bytes[0] = 0xf8; // 62 << 2: '-' first
        assert_eq!(new_token(&bytes), None);
        bytes[0] = 0xfc; // 63 << 2: '_' first, fine
        assert_eq!(new_token(&bytes).as_deref().map(|t| t.starts_with('_')), Some(true));
        bytes[1] = 0xf8; // '-' later, fine
        assert!(new_token(&bytes).is_some());
    }

    #[test]
    fn new_tokens_are_24_uri_safe_characters() {
        let mut bytes = [0u8; TOKEN_BYTES];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        let token = encode_token(&bytes);
        assert_eq!(token.len(), 24);
        assert_eq!(check_token(&token), Ok(token.as_str()));
    }

    #[test]
    fn junk_is_rejected_without_lookup() {
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        let cases: &[(&str, bool)] = &[
            ("Xo3gdOvANs77aUhUX40RFxTZ", true),
            ("wobwQK4sBM-8QKW-hXtwgnp0", true),
            ("a.b~c", true),
            ("", false),
            ("t=abc&c=conversations", false),
            ("abc def", false),
            ("jöns", false),
            ("<script>", false),
            (&long, false),
        ];
        for (token, ok) in cases {
            assert_eq!(check_token(token).is_ok(), *ok, "{token:?}");
        }
        assert_eq!(check_token(""), Err(Error::TokenInvalid));
    }

    #[test]
    fn redaction_keeps_a_short_prefix_only() {
        assert_eq!(redact("Xo3gdOvANs77aUhUX40RFxTZ"), "Xo3gdO…");
        assert_eq!(redact("abc"), "abc");
        assert_eq!(redact("abcdef"), "abcdef");
        assert_eq!(redact("jööööööö"), "jööööö…");
        assert_eq!(redact(""), "");
    }
}
