//! JIDs as the rules need them: split the way Prosody's `util.jid.split` splits (the resource
//! starts at the first `/`, the node ends at the first `@` before it), and the one rule for
//! usernames (the node of an account).

use std::borrow::Cow;

use crate::{Error, Result};

/// Longest node Prosody's nodeprep hands back (1023 bytes).
pub const MAX_NODE_BYTES: usize = 1023;

/// The three parts of a JID, as written (not prepared).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts<'a> {
    /// Before the `@`, if there is one.
    pub node: Option<&'a str>,
    /// The host.
    pub domain: &'a str,
    /// After the `/`, if there is one.
    pub resource: Option<&'a str>,
}

/// Splits `jid` into its parts; empty parts stay empty (callers decide what they accept).
pub fn split(jid: &str) -> Parts<'_> {
    let (bare, resource) = match jid.split_once('/') {
        Some((bare, resource)) => (bare, Some(resource)),
        None => (jid, None),
    };
    let (node, domain) = match bare.split_once('@') {
        Some((node, domain)) => (Some(node), domain),
        None => (None, bare),
    };
    Parts { node, domain, resource }
}

/// The non-empty node of `jid`, if it has one.
pub fn node_of(jid: &str) -> Option<&str> {
    split(jid).node.filter(|node| !node.is_empty())
}

/// The node of `jid` when it is the bare JID of an account of `host`.
pub fn local_node<'a>(jid: &'a str, host: &str) -> Option<&'a str> {
    let parts = split(jid);
    parts.node.filter(|node| !node.is_empty() && parts.domain == host && parts.resource.is_none())
}

/// The one username rule: a prepared node (nodeprep already refuses these characters; checked
/// again so the rule does not rest on the caller) of at most [`MAX_NODE_BYTES`].
pub fn check_username(username: &str) -> Result<&str> {
    let bad = username.is_empty()
        || username.len() > MAX_NODE_BYTES
        || username.contains(['@', '/', '"', '&', '\'', ':', '<', '>', ' '])
        || username.chars().any(char::is_control);
    if bad { Err(Error::InvalidUsername) } else { Ok(username) }
}

/// Prosody's `util.jid.split` (0.12 and 13 alike) on raw bytes, for values read from Lua that
/// may not be UTF-8: the node and host of a JID,
/// `None` when it is not one.
pub fn split_raw(jid: &[u8]) -> Option<(Option<&[u8]>, &[u8])> {
    let run = |s: &[u8]| s.iter().position(|&b| b == b'@' || b == b'/').unwrap_or(s.len());
    let first = run(jid);
    let (node, rest) = match jid.split_at(first) {
        (node, [b'@', rest @ ..]) if !node.is_empty() => (Some(node), rest),
        _ => (None, jid),
    };
    let (host, tail) = rest.split_at(run(rest));
    // After the host: nothing, or a resource of at least one byte.
    let valid_tail = matches!(tail, [] | [b'/', _, ..]);
    (!host.is_empty() && valid_tail).then_some((node, host))
}

/// Prosody's `util.jid.bare`: `node@host`, the host alone, or `None`.
pub fn bare_raw(jid: &[u8]) -> Option<Cow<'_, [u8]>> {
    match split_raw(jid)? {
        (Some(node), host) => Some(Cow::Owned([node, b"@", host].concat())),
        (None, host) => Some(Cow::Borrowed(host)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_prosody() {
        assert_eq!(split("a@b/c"), Parts { node: Some("a"), domain: "b", resource: Some("c") });
        assert_eq!(split("b"), Parts { node: None, domain: "b", resource: None });
        // The resource may hold '@'; the node ends at the first '@' before the '/'.
        assert_eq!(split("b/x@y"), Parts { node: None, domain: "b", resource: Some("x@y") });
        assert_eq!(split("a@b@c"), Parts { node: Some("a"), domain: "b@c", resource: None });
        assert_eq!(node_of("@b"), None);
        assert_eq!(local_node("alice@example.com", "example.com"), Some("alice"));
        assert_eq!(local_node("alice@example.com/phone", "example.com"), None);
        assert_eq!(local_node("alice@example.org", "example.com"), None);
        assert_eq!(local_node("example.com", "example.com"), None);
    }

    #[test]
    fn one_username_rule() {
        assert_eq!(check_username("alice"), Ok("alice"));
        for bad in ["", "a@b", "a/b", "a b", "a:b", "a\u{7}b", "a<b"] {
            assert_eq!(check_username(bad), Err(Error::InvalidUsername), "{bad:?}");
        }
        assert!(check_username(&"x".repeat(MAX_NODE_BYTES)).is_ok());
        assert!(check_username(&"x".repeat(MAX_NODE_BYTES + 1)).is_err());
    }

    #[test]
    fn splits_jids_as_prosody_does() {
        type Split = Option<(Option<&'static str>, &'static str)>;
        let cases: [(&str, Split); 14] = [
            ("alice@example.com", Some((Some("alice"), "example.com"))),
            ("alice@example.com/laptop", Some((Some("alice"), "example.com"))),
            ("example.com", Some((None, "example.com"))),
            ("example.com/r", Some((None, "example.com"))),
            ("shell/a@b", Some((None, "shell"))),
            ("a@b/c/d@e", Some((Some("a"), "b"))),
            ("", None),
            ("@example.com", None),
            ("alice@", None),
            ("alice@example.com/", None),
            ("a@b@c", None),
            ("/r", None),
            ("a@/r", None),
            ("host@", None),
        ];
        for (jid, expected) in cases {
            let got = split_raw(jid.as_bytes()).map(|(node, host)| {
                (node.map(|n| String::from_utf8_lossy(n).into_owned()), String::from_utf8_lossy(host).into_owned())
            });
            let expected = expected.map(|(node, host)| (node.map(str::to_owned), host.to_owned()));
            assert_eq!(got, expected, "{jid:?}");
        }
    }
}
