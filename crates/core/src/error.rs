//! The one error type of the core.

use std::fmt;

/// Everything that can go wrong in the core.
///
/// Expected outcomes (an unknown token, an expired invite, a usage mistake on the command line)
/// are variants here; the binding turns them into Prosody's `nil, "<code>"` convention with
/// [`Error::code`], so the strings are a public contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No token was given at all (`nil` in Lua).
    NoToken,
    /// The token is malformed, unknown, already used or revoked.
    TokenInvalid,
    /// The token exists but its expiry time has passed.
    TokenExpired,
    /// A username is not a valid localpart, or is missing where one is required.
    InvalidUsername,
    /// A stored record lacks a field the rules need, or has it with the wrong type.
    MalformedRecord(&'static str),
    /// A string is not a valid `xmpp:` URI of the kind we build.
    InvalidUri(String),
    /// A string is not a valid XEP-0082 date-time.
    InvalidDateTime(String),
    /// A string is not a valid period ("604800", "1 week", "12h").
    InvalidPeriod(String),
    /// Command-line arguments cannot be understood; the text is the one-line reason.
    Usage(String),
    /// Arithmetic on times would overflow (an absurd ttl).
    TimeOverflow,
    /// The requester is not an account of this host (ad-hoc commands for local users only).
    NotLocalUser,
    /// An account with the requested username exists already.
    UsernameTaken,
    /// The requested username is reserved by another pending invite (XEP-0445 reservation).
    UsernameReserved,
    /// The account a password-reset invite is asked for does not exist on this host.
    UnknownAccount,
    /// A submitted data form cannot be used; the text says why.
    BadForm(String),
}

impl Error {
    /// The stable machine-readable code Prosody callers see as the second return value.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoToken => "no-token",
            Self::TokenInvalid => "token-invalid",
            Self::TokenExpired => "token-expired",
            Self::InvalidUsername => "invalid-username",
            Self::MalformedRecord(_) | Self::TimeOverflow => "internal-server-error",
            Self::InvalidUri(_) | Self::InvalidDateTime(_) | Self::InvalidPeriod(_) | Self::Usage(_) | Self::BadForm(_) => {
                "bad-request"
            }
            Self::NotLocalUser => "not-local-user",
            Self::UsernameTaken => "username-taken",
            Self::UsernameReserved => "username-reserved",
            Self::UnknownAccount => "unknown-account",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoToken => f.write_str("no token given"),
            Self::TokenInvalid => f.write_str("the invite token is invalid"),
            Self::TokenExpired => f.write_str("the invite token has expired"),
            Self::InvalidUsername => f.write_str("not a valid username"),
            Self::MalformedRecord(field) => write!(f, "stored invite record has a bad '{field}' field"),
            Self::InvalidUri(why) => write!(f, "invalid xmpp URI: {why}"),
            Self::InvalidDateTime(why) => write!(f, "invalid XEP-0082 date-time: {why}"),
            Self::InvalidPeriod(what) => write!(f, "invalid period '{what}' (use seconds or e.g. \"1 week\", \"12h\")"),
            Self::Usage(why) => f.write_str(why),
            Self::TimeOverflow => f.write_str("time value out of range"),
            Self::NotLocalUser => f.write_str("only accounts of this host may do this"),
            Self::UsernameTaken => f.write_str("that username is already taken"),
            Self::UsernameReserved => f.write_str("that username is reserved by another pending invite"),
            Self::UnknownAccount => f.write_str("no such account on this host"),
            Self::BadForm(why) => write!(f, "unusable form: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand used throughout the core.
pub type Result<T> = std::result::Result<T, Error>;
