//! The one error type of the core: every refusal the rules decide, its code, its reason and the
//! stanza error a client sees.

use std::fmt;

/// Text of the pre-auth error, as the stock module words it.
pub const INVALID_TOKEN_TEXT: &str = "The invite token is invalid or expired";

/// Text of the invite-only refusal, as the stock module words it.
pub const INVITE_ONLY_TEXT: &str = "Registration on this server is through invitation only";

/// Everything that can go wrong in the core, and every refusal it decides.
///
/// The binding hands an error to Lua as `nil, code, text`: [`Error::code`] (a stable string, part
/// of mod_invites' public `nil, "<code>"` contract where its API returns it) and the `Display`
/// text (the reason, for logs and users). A code that comes back from Lua is read once, at the
/// binding, with [`Error::from_code`]; [`Error::stanza_error`] is the one place codes become
/// XMPP errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No token was given at all (`nil` in Lua).
    NoToken,
    /// The token is malformed, unknown, already used or revoked.
    TokenInvalid,
    /// The token exists but its expiry time has passed.
    TokenExpired,
    /// A revocation found nothing pending to revoke; the text says what became of the invite
    /// (`used`, `expired`, `revoked`, `unknown`).
    NotPending(String),
    /// A username is not a valid localpart, or is missing where one is required.
    InvalidUsername,
    /// A field the rules need is missing or of the wrong type: in a stored record, or in what a
    /// shim passed (the rules never assume a default for it: they fail closed).
    BadField(&'static str),
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
    /// A request cannot be used; the text, shown as it is, says why (empty: a generic text).
    BadRequest(String),
    /// The requester may not do this.
    Forbidden,
    /// A user may not create another invite now; the text says until when.
    QuotaExceeded(String),
    /// A group chat of an invite does not exist (any more); the text names it.
    RoomNotFound(String),
    /// The creator may not invite people to a group chat; the text names it.
    RoomNotAllowed(String),
    /// The server failed (storage, mostly): mod_invites' `internal-server-error`, and any code
    /// this crate does not know.
    Internal,

    // Pre-auth (XEP-0445)
    /// The pre-auth iq is not of type `set`.
    PreauthNotSet,
    /// The address made too many failed attempts.
    Throttled,
    /// The pre-auth iq carries no token.
    PreauthWithoutToken,
    /// The token cannot be one of ours (not looked up).
    TokenMalformed,
    /// The lookup found no valid invite for the token.
    TokenRefused,
    /// The lookup itself failed (storage): the server's fault, not the client's.
    LookupFailed,

    // Registration (mod_invites_register)
    /// Invite-only server, no invite.
    InviteOnly,
    /// The invite was used or revoked after the stream pre-authenticated with it.
    InviteGone,
    /// A restricted invite presented with another username.
    WrongUsername,
    /// A reset invite whose account does not exist: it never creates one.
    NoAccountToReset,
    /// The username is reserved by another pending invite.
    NameReserved,
    /// The account exists and the invite is not a reset invite for it.
    AccountExists,
    /// Another registration holds the claim on this single-use invite.
    InviteInUse,
    /// Whether the username is reserved could not be told (storage failed).
    ReservationUnknown,
    /// Whether the invite is still valid could not be told (storage failed).
    InviteUnknown,
}

type MakeError = fn(String) -> Error;

/// Every code with the variant [`Error::from_code`] reads it as; the payload of text-carrying
/// variants is the text that comes with the code.
const CODES: &[(&str, MakeError)] = &[
    ("no-token", |_| Error::NoToken),
    ("token-invalid", |_| Error::TokenInvalid),
    ("token-expired", |_| Error::TokenExpired),
    // Its text is the state; the whole reason (`Display`) reads back as well.
    ("not-pending", |text| Error::NotPending(text.strip_prefix(NOT_PENDING).unwrap_or(&text).to_owned())),
    ("invalid-username", |_| Error::InvalidUsername),
    ("bad-request", Error::BadRequest),
    ("not-local-user", |_| Error::NotLocalUser),
    ("username-taken", |_| Error::UsernameTaken),
    ("username-reserved", |_| Error::UsernameReserved),
    ("unknown-account", |_| Error::UnknownAccount),
    ("forbidden", |_| Error::Forbidden),
    ("quota-exceeded", Error::QuotaExceeded),
    ("item-not-found", Error::RoomNotFound),
    ("not-allowed", Error::RoomNotAllowed),
    ("internal-server-error", |_| Error::Internal),
    ("preauth-not-set", |_| Error::PreauthNotSet),
    ("throttled", |_| Error::Throttled),
    ("preauth-without-token", |_| Error::PreauthWithoutToken),
    ("token-malformed", |_| Error::TokenMalformed),
    ("token-refused", |_| Error::TokenRefused),
    ("lookup-failed", |_| Error::LookupFailed),
    ("invite-only", |_| Error::InviteOnly),
    ("invite-gone", |_| Error::InviteGone),
    ("wrong-username", |_| Error::WrongUsername),
    ("no-account-to-reset", |_| Error::NoAccountToReset),
    ("name-reserved", |_| Error::NameReserved),
    ("account-exists", |_| Error::AccountExists),
    ("invite-in-use", |_| Error::InviteInUse),
    ("reservation-unknown", |_| Error::ReservationUnknown),
    ("invite-unknown", |_| Error::InviteUnknown),
];

/// An XMPP stanza error to send back: RFC 6120 type, defined condition and human text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaError {
    /// `cancel`, `modify`, `wait`, `auth`.
    pub kind: &'static str,
    /// A defined condition of `urn:ietf:params:xml:ns:xmpp-stanzas`.
    pub condition: &'static str,
    /// The `<text/>` shown to the user.
    pub text: String,
}

/// The reason of [`Error::NotPending`], before the state.
const NOT_PENDING: &str = "The invitation is not pending: ";

/// Generic texts of the text-carrying variants, used when they carry none.
const BAD_REQUEST_TEXT: &str = "The submitted form could not be used";
const QUOTA_TEXT: &str = "You cannot create more invites now";
const ROOM_NOT_FOUND_TEXT: &str = "No such group chat";
const ROOM_NOT_ALLOWED_TEXT: &str = "You may not invite people to that group chat";

fn or_generic<'a>(text: &'a str, generic: &'a str) -> &'a str {
    if text.is_empty() { generic } else { text }
}

impl Error {
    /// The stable machine-readable code: what Lua sees as the second value of a failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoToken => "no-token",
            Self::TokenInvalid => "token-invalid",
            Self::TokenExpired => "token-expired",
            Self::NotPending(_) => "not-pending",
            Self::InvalidUsername => "invalid-username",
            Self::BadField(_) | Self::TimeOverflow | Self::Internal => "internal-server-error",
            Self::InvalidUri(_) | Self::InvalidDateTime(_) | Self::InvalidPeriod(_) | Self::Usage(_) | Self::BadRequest(_) => {
                "bad-request"
            }
            Self::NotLocalUser => "not-local-user",
            Self::UsernameTaken => "username-taken",
            Self::UsernameReserved => "username-reserved",
            Self::UnknownAccount => "unknown-account",
            Self::Forbidden => "forbidden",
            Self::QuotaExceeded(_) => "quota-exceeded",
            Self::RoomNotFound(_) => "item-not-found",
            Self::RoomNotAllowed(_) => "not-allowed",
            Self::PreauthNotSet => "preauth-not-set",
            Self::Throttled => "throttled",
            Self::PreauthWithoutToken => "preauth-without-token",
            Self::TokenMalformed => "token-malformed",
            Self::TokenRefused => "token-refused",
            Self::LookupFailed => "lookup-failed",
            Self::InviteOnly => "invite-only",
            Self::InviteGone => "invite-gone",
            Self::WrongUsername => "wrong-username",
            Self::NoAccountToReset => "no-account-to-reset",
            Self::NameReserved => "name-reserved",
            Self::AccountExists => "account-exists",
            Self::InviteInUse => "invite-in-use",
            Self::ReservationUnknown => "reservation-unknown",
            Self::InviteUnknown => "invite-unknown",
        }
    }

    /// Reads a code back (with the text that came with it, if any): what this crate handed out,
    /// or what mod_invites' API returned. Codes nobody knows are the server's fault.
    pub fn from_code(code: &str, text: Option<&str>) -> Self {
        let text = text.unwrap_or_default().to_owned();
        CODES.iter().find(|(known, _)| *known == code).map_or(Self::Internal, |(_, make)| make(text))
    }

    /// The XMPP error a client is answered with. Text-carrying variants show their text (so a
    /// code read back with its text gives the same error); `host` names this server.
    pub fn stanza_error(&self, host: &str) -> StanzaError {
        let fixed = |kind, condition, text: &str| StanzaError { kind, condition, text: text.to_owned() };
        match self {
            Self::NotLocalUser => fixed("auth", "forbidden", &format!("This command is only available to users of {host}")),
            Self::UsernameTaken => fixed("cancel", "conflict", "An account with that username already exists"),
            Self::UsernameReserved => fixed("cancel", "conflict", "That username is reserved by another pending invite"),
            Self::UnknownAccount => fixed("cancel", "item-not-found", &format!("There is no such account on {host}")),
            Self::InvalidUsername => fixed("modify", "bad-request", "The username is not valid"),
            Self::InvalidUri(_) | Self::InvalidDateTime(_) | Self::InvalidPeriod(_) | Self::Usage(_) | Self::BadRequest(_) => {
                fixed("modify", "bad-request", &self.to_string())
            }
            Self::Forbidden => fixed("auth", "forbidden", "You may not do this"),
            Self::QuotaExceeded(_) => fixed("wait", "resource-constraint", &self.to_string()),
            Self::TokenInvalid => fixed("cancel", "item-not-found", "There is no such invite"),
            Self::NotPending(_) => fixed("cancel", "item-not-found", &self.to_string()),
            Self::RoomNotFound(_) => fixed("cancel", "item-not-found", &self.to_string()),
            Self::RoomNotAllowed(_) => fixed("cancel", "not-allowed", &self.to_string()),
            Self::NoToken | Self::TokenExpired | Self::BadField(_) | Self::TimeOverflow | Self::Internal => {
                fixed("wait", "internal-server-error", "The invite could not be created, please try again later")
            }
            Self::PreauthNotSet => fixed("modify", "bad-request", "The pre-auth request must be of type 'set'"),
            Self::Throttled => fixed("wait", "policy-violation", "Too many failed invite attempts, try again later"),
            Self::PreauthWithoutToken => fixed("modify", "bad-request", "The pre-auth request carries no token"),
            Self::TokenMalformed | Self::TokenRefused => fixed("cancel", "item-not-found", INVALID_TOKEN_TEXT),
            Self::LookupFailed => fixed("wait", "internal-server-error", "The invite could not be checked, try again later"),
            Self::InviteOnly => fixed("modify", "not-acceptable", INVITE_ONLY_TEXT),
            Self::InviteGone => fixed("cancel", "not-allowed", INVALID_TOKEN_TEXT),
            Self::WrongUsername => fixed("modify", "not-acceptable", "This invite is for a different username"),
            Self::NoAccountToReset => {
                fixed("cancel", "item-not-found", "This invite resets the password of an account that does not exist")
            }
            Self::NameReserved => fixed("cancel", "conflict", "The requested username is reserved"),
            Self::AccountExists => fixed("cancel", "conflict", "The requested username already exists."),
            Self::InviteInUse => fixed("cancel", "not-allowed", "This invite is already being used by another registration"),
            Self::ReservationUnknown => {
                fixed("wait", "internal-server-error", "The username could not be checked, please try again later")
            }
            Self::InviteUnknown => {
                fixed("wait", "internal-server-error", "The invite could not be checked, please try again later")
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoToken => f.write_str("no token given"),
            Self::TokenInvalid => f.write_str("the invite token is invalid"),
            Self::TokenExpired => f.write_str("the invite token has expired"),
            Self::NotPending(state) => write!(f, "{NOT_PENDING}{}", or_generic(state, "unknown")),
            Self::InvalidUsername => f.write_str("not a valid username"),
            Self::BadField(field) => write!(f, "missing or bad field '{field}'"),
            Self::InvalidUri(why) => write!(f, "invalid xmpp URI: {why}"),
            Self::InvalidDateTime(why) => write!(f, "invalid XEP-0082 date-time: {why}"),
            Self::InvalidPeriod(what) => write!(f, "invalid period '{what}' (use seconds or e.g. \"1 week\", \"12h\")"),
            Self::Usage(why) => f.write_str(why),
            Self::TimeOverflow => f.write_str("time value out of range"),
            Self::NotLocalUser => f.write_str("only accounts of this host may do this"),
            Self::UsernameTaken => f.write_str("that username is already taken"),
            Self::UsernameReserved => f.write_str("that username is reserved by another pending invite"),
            Self::UnknownAccount => f.write_str("no such account on this host"),
            // Text-carrying variants: the text is what the user sees (see `stanza_error`).
            Self::BadRequest(why) => f.write_str(or_generic(why, BAD_REQUEST_TEXT)),
            Self::QuotaExceeded(why) => f.write_str(or_generic(why, QUOTA_TEXT)),
            Self::RoomNotFound(why) => f.write_str(or_generic(why, ROOM_NOT_FOUND_TEXT)),
            Self::RoomNotAllowed(why) => f.write_str(or_generic(why, ROOM_NOT_ALLOWED_TEXT)),
            Self::Forbidden => f.write_str("not permitted"),
            Self::Internal => f.write_str("internal server error"),
            Self::PreauthNotSet => f.write_str("not an iq of type set"),
            Self::Throttled => f.write_str("address throttled"),
            Self::PreauthWithoutToken => f.write_str("no token"),
            Self::TokenMalformed => f.write_str("malformed token"),
            Self::TokenRefused => f.write_str("unknown, used or expired token"),
            Self::LookupFailed => f.write_str("lookup failed"),
            Self::InviteOnly => f.write_str("no invite on an invite-only host"),
            Self::InviteGone => f.write_str("invite used or revoked since pre-auth"),
            Self::WrongUsername => f.write_str("invite restricted to another username"),
            Self::NoAccountToReset => f.write_str("reset invite for a missing account"),
            Self::NameReserved => f.write_str("username reserved by a pending invite"),
            Self::AccountExists => f.write_str("account exists and the invite does not reset it"),
            Self::InviteInUse => f.write_str("invite claimed by another registration"),
            Self::ReservationUnknown => f.write_str("reservations could not be read"),
            Self::InviteUnknown => f.write_str("the invite could not be read"),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand used throughout the core.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "example.com";

    /// One of every variant.
    fn every_error() -> Vec<Error> {
        let text = || "Group chat a@b: no such group chat".to_owned();
        vec![
            Error::NoToken,
            Error::TokenInvalid,
            Error::TokenExpired,
            Error::NotPending("used".into()),
            Error::InvalidUsername,
            Error::BadField("jid"),
            Error::InvalidUri("x".into()),
            Error::InvalidDateTime("x".into()),
            Error::InvalidPeriod("x".into()),
            Error::Usage("--uses needs a value".into()),
            Error::TimeOverflow,
            Error::NotLocalUser,
            Error::UsernameTaken,
            Error::UsernameReserved,
            Error::UnknownAccount,
            Error::BadRequest("No account given".into()),
            Error::BadRequest(String::new()),
            Error::Forbidden,
            Error::QuotaExceeded("You can create 2 invites per week".into()),
            Error::QuotaExceeded(String::new()),
            Error::RoomNotFound(text()),
            Error::RoomNotFound(String::new()),
            Error::RoomNotAllowed(text()),
            Error::Internal,
            Error::PreauthNotSet,
            Error::Throttled,
            Error::PreauthWithoutToken,
            Error::TokenMalformed,
            Error::TokenRefused,
            Error::LookupFailed,
            Error::InviteOnly,
            Error::InviteGone,
            Error::WrongUsername,
            Error::NoAccountToReset,
            Error::NameReserved,
            Error::AccountExists,
            Error::InviteInUse,
            Error::ReservationUnknown,
            Error::InviteUnknown,
        ]
    }

    #[test]
    fn every_code_reads_back_as_its_error() {
        for error in every_error() {
            let text = error.to_string();
            let back = Error::from_code(error.code(), Some(&text));
            assert_eq!(back.code(), error.code(), "{error:?}");
            // What Lua is told and hands back gives the client the same error.
            assert_eq!(back.stanza_error(HOST), error.stanza_error(HOST), "{error:?}");
        }
        // Codes shared by several variants read back as the one whose text is shown as it is.
        assert_eq!(Error::from_code("bad-request", Some("x")), Error::BadRequest("x".into()));
        assert_eq!(Error::from_code("internal-server-error", None), Error::Internal);
        // Each code of the table is its variant's code, once.
        for (i, (code, make)) in CODES.iter().enumerate() {
            assert_eq!(make("t".into()).code(), *code);
            assert!(CODES.iter().skip(i + 1).all(|(other, _)| other != code), "{code} twice");
        }
    }

    #[test]
    fn unknown_codes_are_the_servers_fault() {
        for code in ["", "something-new", "Token-Invalid"] {
            assert_eq!(Error::from_code(code, Some("why")), Error::Internal, "{code:?}");
        }
        assert_eq!(Error::Internal.stanza_error(HOST).condition, "internal-server-error");
    }

    #[test]
    fn stanza_errors() {
        let cases = [
            (Error::NotLocalUser, "auth", "forbidden", "This command is only available to users of example.com"),
            (Error::UsernameTaken, "cancel", "conflict", "An account with that username already exists"),
            (Error::UsernameReserved, "cancel", "conflict", "That username is reserved by another pending invite"),
            (Error::UnknownAccount, "cancel", "item-not-found", "There is no such account on example.com"),
            (Error::InvalidUsername, "modify", "bad-request", "The username is not valid"),
            (Error::BadRequest("No account given".into()), "modify", "bad-request", "No account given"),
            (Error::BadRequest(String::new()), "modify", "bad-request", "The submitted form could not be used"),
            (Error::Usage("x".into()), "modify", "bad-request", "x"),
            (Error::TimeOverflow, "wait", "internal-server-error", "The invite could not be created, please try again later"),
            (Error::NoToken, "wait", "internal-server-error", "The invite could not be created, please try again later"),
            (Error::QuotaExceeded(String::new()), "wait", "resource-constraint", "You cannot create more invites now"),
            (Error::TokenInvalid, "cancel", "item-not-found", "There is no such invite"),
            (Error::Forbidden, "auth", "forbidden", "You may not do this"),
            (Error::RoomNotFound(String::new()), "cancel", "item-not-found", "No such group chat"),
            (Error::RoomNotAllowed(String::new()), "cancel", "not-allowed", "You may not invite people to that group chat"),
            (Error::PreauthNotSet, "modify", "bad-request", "The pre-auth request must be of type 'set'"),
            (Error::Throttled, "wait", "policy-violation", "Too many failed invite attempts, try again later"),
            (Error::PreauthWithoutToken, "modify", "bad-request", "The pre-auth request carries no token"),
            (Error::TokenRefused, "cancel", "item-not-found", INVALID_TOKEN_TEXT),
            (Error::LookupFailed, "wait", "internal-server-error", "The invite could not be checked, try again later"),
            (Error::InviteOnly, "modify", "not-acceptable", INVITE_ONLY_TEXT),
            (Error::InviteGone, "cancel", "not-allowed", INVALID_TOKEN_TEXT),
        ];
        for (error, kind, condition, text) in cases {
            let e = error.stanza_error(HOST);
            assert_eq!((e.kind, e.condition, e.text.as_str()), (kind, condition, text), "{error:?}");
        }
    }
}
