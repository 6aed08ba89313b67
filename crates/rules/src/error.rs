//! The one error type of the core: every refusal the rules decide, its code, its reason and the
//! stanza error a client sees — all from one table ([`errors!`]), so a new error is one entry.

use std::fmt;

/// Text of the pre-auth error, as the stock module words it.
pub const INVALID_TOKEN_TEXT: &str = "The invite token is invalid or expired";

/// Text of the invite-only refusal, as the stock module words it.
pub const INVITE_ONLY_TEXT: &str = "Registration on this server is through invitation only";

/// What a client is shown for the server's failures.
const TRY_LATER_TEXT: &str = "The server could not do this now, please try again later";

/// The reason of [`Error::NotPending`], before the state.
const NOT_PENDING: &str = "The invitation is not pending: ";

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

/// What the `<text/>` of an error's stanza error says.
enum Shown {
    /// This text.
    Fixed(&'static str),
    /// The error's reason (its `Display`), for errors whose text is meant for the user.
    Reason,
    /// This text with `{host}` replaced by the server's name.
    OnHost(&'static str),
}

fn or_generic<'a>(text: &'a str, generic: &'a str) -> &'a str {
    if text.is_empty() { generic } else { text }
}

/// The table: per error, its doc, its variant (with the field it carries), its code (what Lua
/// sees as the second value of a failure; part of mod_invites' public `nil, "<code>"` contract
/// where its API returns it), its stanza error (type, condition, text), its reason (`Display`,
/// for logs and users) and, for the one variant each code reads back as, how
/// ([`Error::from_code`]: `from |text| ...`).
macro_rules! errors {
    ($(
        $(#[doc = $doc:literal])+
        $name:ident $(($field:ident: $ty:ty))? = $code:literal,
            ($kind:literal, $condition:literal, $shown:expr),
            $reason:expr
            $(, from |$text:ident| $read:expr)?;
    )+) => {
        /// Everything that can go wrong in the core, and every refusal it decides: one variant
        /// per distinct meaning a client or an operator can act on.
        ///
        /// The binding hands an error to Lua as `nil, code, text`: [`Error::code`] and the
        /// `Display` text. A code that comes back from Lua is read once, at the binding, with
        /// [`Error::from_code`]; [`Error::stanza_error`] is the one place codes become XMPP
        /// errors.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Error {
            $($(#[doc = $doc])+ $name $(($ty))?,)+
        }

        impl Error {
            /// Every code, in the table's order (codes several errors share appear once each).
            pub const CODES: &'static [&'static str] = &[$($code),+];

            /// The stable machine-readable code: what Lua sees as the second value of a failure.
            pub fn code(&self) -> &'static str {
                match self {
                    $(Self::$name { .. } => $code,)+
                }
            }

            /// Reads a code back (with the text that came with it, if any): what this crate
            /// handed out, or what mod_invites' API returned. Codes nobody knows are the
            /// server's fault.
            pub fn from_code(code: &str, text: Option<&str>) -> Self {
                let text = text.unwrap_or_default().to_owned();
                $($(
                    if code == $code {
                        let $text = text;
                        return $read;
                    }
                )?)+
                let _ = text;
                Self::Internal
            }

            /// The XMPP error a client is answered with; `host` names this server.
            pub fn stanza_error(&self, host: &str) -> StanzaError {
                let (kind, condition, shown) = match self {
                    $(Self::$name { .. } => ($kind, $condition, $shown),)+
                };
                let text = match shown {
                    Shown::Fixed(text) => text.to_owned(),
                    Shown::Reason => self.to_string(),
                    Shown::OnHost(text) => text.replace("{host}", host),
                };
                StanzaError { kind, condition, text }
            }
        }

        impl fmt::Display for Error {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(Self::$name $(($field))? => write!(f, "{}", $reason),)+
                }
            }
        }
    };
}

errors! {
    /// No token was given at all (`nil` in Lua).
    NoToken = "no-token", ("wait", "internal-server-error", Shown::Fixed(TRY_LATER_TEXT)), "no token given",
        from |_t| Error::NoToken;
    /// The token is malformed, unknown, already used or revoked.
    TokenInvalid = "token-invalid", ("cancel", "item-not-found", Shown::Fixed(INVALID_TOKEN_TEXT)),
        "the invite token is invalid", from |_t| Error::TokenInvalid;
    /// The token exists but its expiry time has passed.
    TokenExpired = "token-expired", ("cancel", "item-not-found", Shown::Fixed(INVALID_TOKEN_TEXT)),
        "the invite token has expired", from |_t| Error::TokenExpired;
    /// A revocation found nothing pending to revoke; the text says what became of the invite
    /// (`used`, `expired`, `revoked`, `unknown`).
    NotPending(state: String) = "not-pending", ("cancel", "item-not-found", Shown::Reason),
        format!("{NOT_PENDING}{}", or_generic(state, "unknown")),
        from |text| Error::NotPending(text.strip_prefix(NOT_PENDING).unwrap_or(&text).to_owned());
    /// A username is not a valid localpart, or is missing where one is required.
    InvalidUsername = "invalid-username", ("modify", "bad-request", Shown::Fixed("The username is not valid")),
        "not a valid username", from |_t| Error::InvalidUsername;
    /// A field the rules need is missing or of the wrong type: in a stored record, or in what a
    /// shim passed (the rules never assume a default for it: they fail closed).
    BadField(field: &'static str) = "internal-server-error", ("wait", "internal-server-error", Shown::Fixed(TRY_LATER_TEXT)),
        format!("missing or bad field '{field}'");
    /// A string is not a valid period ("604800", "1 week", "12h").
    InvalidPeriod(what: String) = "bad-request", ("modify", "bad-request", Shown::Reason),
        format!("invalid period '{what}' (use seconds or e.g. \"1 week\", \"12h\")");
    /// Command-line arguments cannot be understood; the text is the one-line reason.
    Usage(why: String) = "bad-request", ("modify", "bad-request", Shown::Reason), why;
    /// Arithmetic on times would overflow (an absurd ttl).
    TimeOverflow = "internal-server-error", ("wait", "internal-server-error", Shown::Fixed(TRY_LATER_TEXT)),
        "time value out of range";
    /// The requester is not an account of this host (ad-hoc commands for local users only).
    NotLocalUser = "not-local-user", ("auth", "forbidden", Shown::OnHost("This command is only available to users of {host}")),
        "only accounts of this host may do this", from |_t| Error::NotLocalUser;
    /// An account with the requested username exists already (and the invite does not reset it).
    UsernameTaken = "username-taken", ("cancel", "conflict", Shown::Fixed("An account with that username already exists")),
        "that username is already taken", from |_t| Error::UsernameTaken;
    /// The requested username is reserved by another pending invite (XEP-0445 reservation).
    UsernameReserved = "username-reserved",
        ("cancel", "conflict", Shown::Fixed("That username is reserved by another pending invite")),
        "that username is reserved by another pending invite", from |_t| Error::UsernameReserved;
    /// The account asked for does not exist on this host: a password-reset invite for it, or one
    /// being used (reset invites never create the account).
    UnknownAccount = "unknown-account", ("cancel", "item-not-found", Shown::OnHost("There is no such account on {host}")),
        "no such account on this host", from |_t| Error::UnknownAccount;
    /// A request cannot be used; the text, shown as it is, says why (empty: a generic text).
    BadRequest(why: String) = "bad-request", ("modify", "bad-request", Shown::Reason),
        or_generic(why, "The submitted form could not be used"), from |text| Error::BadRequest(text);
    /// The requester may not do this.
    Forbidden = "forbidden", ("auth", "forbidden", Shown::Fixed("You may not do this")), "not permitted",
        from |_t| Error::Forbidden;
    /// A user may not create another invite now; the text says until when.
    QuotaExceeded(why: String) = "quota-exceeded", ("wait", "resource-constraint", Shown::Reason),
        or_generic(why, "You cannot create more invites now"), from |text| Error::QuotaExceeded(text);
    /// A group chat of an invite does not exist (any more); the text names it.
    RoomNotFound(why: String) = "item-not-found", ("cancel", "item-not-found", Shown::Reason),
        or_generic(why, "No such group chat"), from |text| Error::RoomNotFound(text);
    /// The creator may not invite people to a group chat; the text names it.
    RoomNotAllowed(why: String) = "not-allowed", ("cancel", "not-allowed", Shown::Reason),
        or_generic(why, "You may not invite people to that group chat"), from |text| Error::RoomNotAllowed(text);
    /// The server failed (storage, mostly; or it could not tell whether an invite or a name is
    /// still valid): mod_invites' `internal-server-error`, and any code this crate does not know.
    Internal = "internal-server-error", ("wait", "internal-server-error", Shown::Fixed(TRY_LATER_TEXT)),
        "internal server error", from |_t| Error::Internal;
    /// The pre-auth iq is not of type `set`.
    PreauthNotSet = "preauth-not-set", ("modify", "bad-request", Shown::Fixed("The pre-auth request must be of type 'set'")),
        "not an iq of type set", from |_t| Error::PreauthNotSet;
    /// The address made too many failed attempts.
    Throttled = "throttled", ("wait", "policy-violation", Shown::Fixed("Too many failed invite attempts, try again later")),
        "address throttled", from |_t| Error::Throttled;
    /// The pre-auth iq carries no token.
    PreauthWithoutToken = "preauth-without-token",
        ("modify", "bad-request", Shown::Fixed("The pre-auth request carries no token")), "no token",
        from |_t| Error::PreauthWithoutToken;
    /// Invite-only server, no invite.
    InviteOnly = "invite-only", ("modify", "not-acceptable", Shown::Fixed(INVITE_ONLY_TEXT)),
        "no invite on an invite-only host", from |_t| Error::InviteOnly;
    /// The invite was used or revoked after the stream pre-authenticated with it.
    InviteGone = "invite-gone", ("cancel", "not-allowed", Shown::Fixed(INVALID_TOKEN_TEXT)),
        "invite used or revoked since pre-auth", from |_t| Error::InviteGone;
    /// A restricted invite presented with another username.
    WrongUsername = "wrong-username", ("modify", "not-acceptable", Shown::Fixed("This invite is for a different username")),
        "invite restricted to another username", from |_t| Error::WrongUsername;
    /// Another registration holds the claim on this single-use invite.
    InviteInUse = "invite-in-use",
        ("cancel", "not-allowed", Shown::Fixed("This invite is already being used by another registration")),
        "invite claimed by another registration", from |_t| Error::InviteInUse;
}

impl std::error::Error for Error {}

impl Error {
    /// A command line or a verb's words that cannot be read, with the one-line reason.
    pub(crate) fn usage(why: impl Into<String>) -> Self {
        Self::Usage(why.into())
    }
}

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
            Error::InviteOnly,
            Error::InviteGone,
            Error::WrongUsername,
            Error::InviteInUse,
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
        assert_eq!(Error::from_code("not-pending", Some("used")), Error::NotPending("used".into()));
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
            (Error::TimeOverflow, "wait", "internal-server-error", TRY_LATER_TEXT),
            (Error::NoToken, "wait", "internal-server-error", TRY_LATER_TEXT),
            (Error::QuotaExceeded(String::new()), "wait", "resource-constraint", "You cannot create more invites now"),
            (Error::TokenInvalid, "cancel", "item-not-found", INVALID_TOKEN_TEXT),
            (Error::NotPending("used".into()), "cancel", "item-not-found", "The invitation is not pending: used"),
            (Error::Forbidden, "auth", "forbidden", "You may not do this"),
            (Error::RoomNotFound(String::new()), "cancel", "item-not-found", "No such group chat"),
            (Error::RoomNotAllowed(String::new()), "cancel", "not-allowed", "You may not invite people to that group chat"),
            (Error::PreauthNotSet, "modify", "bad-request", "The pre-auth request must be of type 'set'"),
            (Error::Throttled, "wait", "policy-violation", "Too many failed invite attempts, try again later"),
            (Error::PreauthWithoutToken, "modify", "bad-request", "The pre-auth request carries no token"),
            (Error::Internal, "wait", "internal-server-error", TRY_LATER_TEXT),
            (Error::InviteOnly, "modify", "not-acceptable", INVITE_ONLY_TEXT),
            (Error::InviteGone, "cancel", "not-allowed", INVALID_TOKEN_TEXT),
        ];
        for (error, kind, condition, text) in cases {
            let e = error.stanza_error(HOST);
            assert_eq!((e.kind, e.condition, e.text.as_str()), (kind, condition, text), "{error:?}");
        }
    }
}
