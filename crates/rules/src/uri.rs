//! `xmpp:` URIs (RFC 5122) with XEP-0147 query components, as carried by invites.
//!
//! Only the shape invites use is supported: `xmpp:JID?ACTION;key=value;...`. The
//! `//authority` form and fragments are rejected rather than silently dropped.

use std::fmt::{self, Write as _};
#[cfg(test)]
use std::str::FromStr;

use crate::jid;

/// An `xmpp:` URI of the form `xmpp:JID?ACTION;key=value;...`, with every part unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmppUri {
    /// The JID the URI points at, as plain text ("example.com", "alice@example.com").
    pub jid: String,
    /// The XEP-0147 query type, e.g. "register" or "roster".
    pub action: String,
    /// The key/value pairs after the action, in order, e.g. `[("preauth", "TOKEN"), ("ibr", "y")]`.
    pub params: Vec<(String, String)>,
}

impl XmppUri {
    /// The value of the first parameter called `key`, if there is one.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// RFC 3986 unreserved characters; the only ones XEP-0147 keys and values keep as they are.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters kept as they are in a node or resource: unreserved plus the sub-delims that can
/// be mistaken neither for JID separators nor for query syntax (so `;`, `=`, `&`, `'` are
/// escaped even where RFC 5122 would allow them).
fn is_local_safe(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'!' | b'$' | b'(' | b')' | b'*' | b'+' | b',')
}

/// Characters kept as they are in a domain: those of an ASCII host name.
fn is_domain_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.')
}

/// Characters that may never appear unescaped anywhere in a URI.
#[cfg(test)]
fn is_forbidden_raw(b: u8) -> bool {
    b <= b' ' || b == 0x7f || matches!(b, b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}')
}

/// Writes `s`, percent-encoding (upper-case hex) every byte `keep` rejects.
fn encode(out: &mut impl fmt::Write, s: &str, keep: fn(u8) -> bool) -> fmt::Result {
    for b in s.bytes() {
        if keep(b) {
            out.write_char(char::from(b))?;
        } else {
            write!(out, "%{b:02X}")?;
        }
    }
    Ok(())
}

// The parser below is the builders' test oracle (round trips in the property tests): nothing
// outside the tests reads an `xmpp:` URI.

#[cfg(test)]
fn invalid(why: impl Into<String>) -> String {
    format!("invalid xmpp URI: {}", why.into())
}

#[cfg(test)]
fn hex_value(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Undoes percent-encoding; the result must be UTF-8.
#[cfg(test)]
fn decode(s: &str) -> Result<String, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let high = bytes.next().and_then(hex_value);
        let low = bytes.next().and_then(hex_value);
        match (high, low) {
            (Some(high), Some(low)) => out.push(high << 4 | low),
            _ => return Err(invalid(format!("bad percent escape in '{s}'"))),
        }
    }
    String::from_utf8(out).map_err(|_| invalid(format!("'{s}' is not UTF-8 once decoded")))
}

impl fmt::Display for XmppUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let jid::Parts { node, domain, resource } = jid::split(&self.jid);

        f.write_str("xmpp:")?;
        if let Some(node) = node {
            encode(f, node, is_local_safe)?;
            f.write_char('@')?;
        }
        encode(f, domain, is_domain_safe)?;
        if let Some(resource) = resource {
            f.write_char('/')?;
            encode(f, resource, is_local_safe)?;
        }
        f.write_char('?')?;
        encode(f, &self.action, is_unreserved)?;
        for (key, value) in &self.params {
            f.write_char(';')?;
            encode(f, key, is_unreserved)?;
            f.write_char('=')?;
            encode(f, value, is_unreserved)?;
        }
        Ok(())
    }
}

#[cfg(test)]
impl FromStr for XmppUri {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse(s)
    }
}

/// Decodes the path of an `xmpp:` URI into JID text, checking each part is non-empty and that
/// decoding did not smuggle in a separator that would change how the JID splits.
#[cfg(test)]
fn parse_path(path: &str) -> Result<String, String> {
    if path.is_empty() {
        return Err(invalid("empty path"));
    }
    // Split before decoding: an encoded '@' or '/' is part of its component.
    let jid::Parts { node, domain, resource } = jid::split(path);

    let mut jid = String::with_capacity(path.len());
    if let Some(node) = node {
        let node = decode(node)?;
        if node.is_empty() {
            return Err(invalid("empty node before '@'"));
        }
        if node.contains(['@', '/']) {
            return Err(invalid(format!("node '{node}' contains '@' or '/'")));
        }
        jid.push_str(&node);
        jid.push('@');
    }
    let domain = decode(domain)?;
    if domain.is_empty() {
        return Err(invalid("empty domain"));
    }
    if domain.contains(['@', '/']) {
        return Err(invalid(format!("domain '{domain}' contains '@' or '/'")));
    }
    jid.push_str(&domain);
    if let Some(resource) = resource {
        let resource = decode(resource)?;
        if resource.is_empty() {
            return Err(invalid("empty resource after '/'"));
        }
        jid.push('/');
        jid.push_str(&resource);
    }
    Ok(jid)
}

/// Parses `xmpp:JID?ACTION;key=value;...`, the inverse of [`XmppUri`]'s `Display`.
///
/// The scheme is matched case-insensitively; percent escapes may use either case of hex digit.
/// Rejected: another or no scheme, the `//authority` form, fragments, an empty path, node,
/// domain or resource, a missing or empty action, parameters without `=` or with an empty
/// key, bad percent escapes, text that is not UTF-8 once decoded, and characters no URI may
/// contain unescaped (spaces, control characters, ``"<>\^`{|}``).
#[cfg(test)]
pub fn parse(s: &str) -> Result<XmppUri, String> {
    let rest = match s.split_once(':') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("xmpp") => rest,
        _ => return Err(invalid(format!("'{s}' does not start with 'xmpp:'"))),
    };
    if rest.starts_with("//") {
        return Err(invalid("the xmpp://authority form is not supported"));
    }
    if let Some(b) = rest.bytes().find(|&b| is_forbidden_raw(b)) {
        return Err(invalid(format!("unescaped character {:?}", char::from(b))));
    }
    if rest.contains('#') {
        return Err(invalid("fragments are not supported"));
    }

    let (path, query) = rest.split_once('?').ok_or_else(|| invalid("missing '?action'"))?;
    let jid = parse_path(path)?;

    let mut parts = query.split(';');
    let action = decode(parts.next().unwrap_or_default())?;
    if action.is_empty() {
        return Err(invalid("empty action"));
    }
    let params = parts
        .map(|part| {
            let (key, value) = part.split_once('=').ok_or_else(|| invalid(format!("parameter '{part}' has no '='")))?;
            let key = decode(key)?;
            if key.is_empty() {
                return Err(invalid(format!("parameter '{part}' has an empty name")));
            }
            Ok((key, decode(value)?))
        })
        .collect::<Result<Vec<_>, String>>()?;

    Ok(XmppUri { jid, action, params })
}

/// Builds an invite URI: `xmpp:JID?ACTION;preauth=TOKEN`, plus `;ibr=y` when `ibr` is true
/// (a contact invite that also lets the invitee register an account).
pub fn invite_uri(jid: &str, action: &str, token: &str, ibr: bool) -> String {
    let mut params = vec![("preauth".to_owned(), token.to_owned())];
    if ibr {
        params.push(("ibr".to_owned(), "y".to_owned()));
    }
    XmppUri { jid: jid.to_owned(), action: action.to_owned(), params }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Query parameters as written in the tables below.
    type Params = &'static [(&'static str, &'static str)];

    fn uri(jid: &str, action: &str, params: &[(&str, &str)]) -> XmppUri {
        XmppUri {
            jid: jid.to_owned(),
            action: action.to_owned(),
            params: params.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())).collect(),
        }
    }

    #[test]
    fn display() {
        let cases: &[(&str, &str, Params, &str)] = &[
            // What Prosody 0.12.3 builds for ordinary invites.
            ("example.com", "register", &[("preauth", "abc_DEF-123")], "xmpp:example.com?register;preauth=abc_DEF-123"),
            ("alice@example.com", "register", &[("preauth", "T")], "xmpp:alice@example.com?register;preauth=T"),
            ("alice@example.com", "roster", &[("preauth", "T"), ("ibr", "y")], "xmpp:alice@example.com?roster;preauth=T;ibr=y"),
            ("example.com", "register", &[], "xmpp:example.com?register"),
            // Node escaping.
            ("o'brien@example.com", "roster", &[], "xmpp:o%27brien@example.com?roster"),
            ("a b@example.com", "roster", &[], "xmpp:a%20b@example.com?roster"),
            ("jöns@example.com", "roster", &[], "xmpp:j%C3%B6ns@example.com?roster"),
            ("a;b=c&d@example.com", "roster", &[], "xmpp:a%3Bb%3Dc%26d@example.com?roster"),
            ("x:\"<>?#@example.com", "roster", &[], "xmpp:x%3A%22%3C%3E%3F%23@example.com?roster"),
            ("a!$()*+,~._-@example.com", "roster", &[], "xmpp:a!$()*+,~._-@example.com?roster"),
            // Domain escaping.
            ("bücher.example", "register", &[], "xmpp:b%C3%BCcher.example?register"),
            ("under_score.example", "register", &[], "xmpp:under%5Fscore.example?register"),
            // Resource.
            ("a@example.com/phone", "roster", &[], "xmpp:a@example.com/phone?roster"),
            ("a@example.com/x/y@z", "roster", &[], "xmpp:a@example.com/x%2Fy%40z?roster"),
            // Keys and values keep only unreserved characters.
            (
                "example.com",
                "roster",
                &[("name", "Jöns Ö'Brien"), ("k;=", "a+b/c")],
                "xmpp:example.com?roster;name=J%C3%B6ns%20%C3%96%27Brien;k%3B%3D=a%2Bb%2Fc",
            ),
            ("example.com", "roster", &[("name", "")], "xmpp:example.com?roster;name="),
        ];
        for (jid, action, params, expected) in cases {
            assert_eq!(uri(jid, action, params).to_string(), *expected, "{jid}");
        }
    }

    #[test]
    fn parse_valid() {
        let cases: &[(&str, &str, &str, Params)] = &[
            ("xmpp:example.com?register;preauth=abc_DEF-123", "example.com", "register", &[("preauth", "abc_DEF-123")]),
            ("xmpp:alice@example.com?roster;preauth=T;ibr=y", "alice@example.com", "roster", &[("preauth", "T"), ("ibr", "y")]),
            ("XMPP:example.com?register", "example.com", "register", &[]),
            ("xmpp:j%c3%b6ns@example.com?roster", "jöns@example.com", "roster", &[]),
            // Raw IRI characters and unescaped RFC 5122 node characters are accepted.
            ("xmpp:jöns@example.com?roster", "jöns@example.com", "roster", &[]),
            ("xmpp:a;b=c@example.com?roster", "a;b=c@example.com", "roster", &[]),
            ("xmpp:a@example.com/r?roster", "a@example.com/r", "roster", &[]),
            ("xmpp:a@example.com/r/s@t?roster", "a@example.com/r/s@t", "roster", &[]),
            (
                "xmpp:example.com?roster;name=;k=a=b;preauth=x?y",
                "example.com",
                "roster",
                &[("name", ""), ("k", "a=b"), ("preauth", "x?y")],
            ),
            ("xmpp:example.com?r%65gister", "example.com", "register", &[]),
        ];
        for (input, jid, action, params) in cases {
            assert_eq!(parse(input).unwrap(), uri(jid, action, params), "{input}");
        }
    }

    #[test]
    fn parse_invalid() {
        let cases = [
            "",
            "example.com?register",
            "alice@example.com",
            "http://example.com/?register",
            "xmpp//example.com?register",
            "xmpp://example.com?register",
            "xmpp://guest@example.com/alice@example.com?register",
            "xmpp:?register",
            "xmpp:",
            "xmpp:example.com",
            "xmpp:example.com?",
            "xmpp:example.com?;preauth=x",
            "xmpp:@example.com?register",
            "xmpp:alice@?register",
            "xmpp:alice@example.com/?register",
            "xmpp:a@b@example.com?register",
            "xmpp:a%40b@example.com?register",
            "xmpp:a%2Fb@example.com?register",
            "xmpp:example%2Fcom?register",
            "xmpp:example.com?register;preauth",
            "xmpp:example.com?register;=x",
            "xmpp:example.com?register;preauth=x;",
            "xmpp:example.com?register;preauth=%",
            "xmpp:example.com?register;preauth=%4",
            "xmpp:example.com?register;preauth=%zz",
            "xmpp:example.com?register;preauth=%C3",
            "xmpp:example.com?register;preauth=%FF",
            "xmpp:a%C3@example.com?register",
            "xmpp:example.com?register;preauth=a b",
            "xmpp:example.com?register;preauth=a\nb",
            "xmpp:example.com?register;preauth=<x>",
            "xmpp:example.com?register;preauth=x#frag",
        ];
        for input in cases {
            let err = parse(input).unwrap_err();
            assert!(err.starts_with("invalid xmpp URI: "), "{input}: {err:?}");
        }
    }

    #[test]
    fn round_trip() {
        let cases: &[(&str, &str, Params)] = &[
            ("example.com", "register", &[("preauth", "abc_DEF-123")]),
            ("alice@example.com", "roster", &[("preauth", "T"), ("ibr", "y")]),
            ("o'brien@example.com", "roster", &[("preauth", "T")]),
            ("a b@example.com", "roster", &[("name", "A B")]),
            ("jöns@example.com", "roster", &[("name", "Jöns")]),
            ("x:\"<>?#;=&%@example.com/res/ource@x", "roster", &[]),
            ("bücher.example", "register", &[("preauth", "%;=?&#")]),
            ("example.com", "ré g", &[("k ey", ""), ("ü", "ÿ")]),
        ];
        for (jid, action, params) in cases {
            let original = uri(jid, action, params);
            let text = original.to_string();
            assert_eq!(parse(&text).unwrap(), original, "{text}");
            assert_eq!(text.parse::<XmppUri>().unwrap(), original, "{text}");
        }
    }

    #[test]
    fn invite_uris() {
        let cases = [
            ("example.com", "register", "abc_DEF-123", false, "xmpp:example.com?register;preauth=abc_DEF-123"),
            ("bob@example.com", "register", "T", false, "xmpp:bob@example.com?register;preauth=T"),
            ("alice@example.com", "roster", "T", false, "xmpp:alice@example.com?roster;preauth=T"),
            ("alice@example.com", "roster", "T", true, "xmpp:alice@example.com?roster;preauth=T;ibr=y"),
        ];
        for (jid, action, token, ibr, expected) in cases {
            let built = invite_uri(jid, action, token, ibr);
            assert_eq!(built, expected);
            let parsed = parse(&built).unwrap();
            assert_eq!(parsed.jid, jid);
            assert_eq!(parsed.param("preauth"), Some(token));
            assert_eq!(parsed.param("ibr"), ibr.then_some("y"));
        }
    }

    #[test]
    fn param_returns_first_match() {
        let parsed = parse("xmpp:example.com?register;preauth=a;preauth=b").unwrap();
        assert_eq!(parsed.param("preauth"), Some("a"));
        assert_eq!(parsed.param("missing"), None);
    }
}
