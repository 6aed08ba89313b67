//! Server-side pre-authenticated roster subscription (XEP-0379), as `mod_invites_register`
//! applies it: which `subscribe` carries a token.

use crate::token::check_token;

/// The token of a `presence` that asks for server-side pre-authenticated subscription: a
/// `subscribe` from someone else carrying a `preauth` token. Anything else is left alone.
pub fn contact_token<'a>(presence_type: Option<&str>, token: Option<&'a str>, from_bare: &str, to_bare: &str) -> Option<&'a str> {
    if presence_type != Some("subscribe") || from_bare.is_empty() || from_bare == to_bare {
        return None;
    }
    token.filter(|token| check_token(token).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "Xo3gdOvANs77aUhUX40RFxTZ";

    #[test]
    fn contact_tokens() {
        let cases = [
            (Some("subscribe"), Some(T), "bob@x", "alice@y", Some(T)),
            (Some("subscribed"), Some(T), "bob@x", "alice@y", None),
            (None, Some(T), "bob@x", "alice@y", None),
            (Some("subscribe"), None, "bob@x", "alice@y", None),
            (Some("subscribe"), Some(""), "bob@x", "alice@y", None),
            (Some("subscribe"), Some("x y"), "bob@x", "alice@y", None),
            (Some("subscribe"), Some(T), "alice@y", "alice@y", None),
            (Some("subscribe"), Some(T), "", "alice@y", None),
        ];
        for (kind, token, from, to, expected) in cases {
            assert_eq!(contact_token(kind, token, from, to), expected, "{kind:?} {token:?} {from} {to}");
        }
    }
}
